"""A consortium of 4 validators recovers an organisation whose account leaked: the members vote its accounts
replaced (the new account consents), and from the block that executes the vote the nodes refuse the leaked
account's transactions at admission (CheckTx), while the new account's are mined."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from web3 import Web3
from web3.logs import DISCARD

from shancheng.contracts.artifacts import load
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.domain.membership import sign_account_consent
from shancheng.testing.network import Network, local_network

pytestmark = [pytest.mark.network, pytest.mark.slow]

TO = "0x" + "44" * 20


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    with local_network(tmp_path_factory.mktemp("recovery") / "n", validators=4) as network:
        yield network


def _transfer(account: Any, chain_id: int, nonce: int) -> str:
    raw = account.sign_transaction({"nonce": nonce, "to": TO, "value": 0, "gas": 21_000, "maxFeePerGas": 0,
                                    "maxPriorityFeePerGas": 0, "chainId": chain_id, "type": 2}).raw_transaction
    return "0x" + bytes(raw).hex()


def _transact(w3: Web3, account: Any, chain_id: int, call: Any) -> Any:
    tx = call.build_transaction({"from": account.address, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0,
                                 "chainId": chain_id, "gas": 3_000_000,
                                 "nonce": w3.eth.get_transaction_count(account.address, "pending")})
    sent = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    receipt = w3.eth.wait_for_transaction_receipt(sent, timeout=60)
    assert receipt["status"] == 1
    return receipt


def test_a_leaked_account_is_refused_at_admission_once_the_vote_replaces_it(net: Network) -> None:
    w3 = net.w3("node0")
    governance = Web3.to_checksum_address(GenesisFile.load(net.genesis_path).governance)
    gov = w3.eth.contract(address=governance, abi=load("Governance").abi)
    dev = net.dev_accounts()
    members = [Account.from_key(a["private_key"]) for a in dev]
    victim_org, leaked = 2, members[1]
    assert gov.functions.orgOfAccount(leaked.address).call() == victim_org
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_raw_transaction(_transfer(leaked, net.chain_id, 0)), timeout=60)  # a member until now

    fresh = Account.create()
    consent = sign_account_consent(bytes(fresh.key), chain_id=net.chain_id, governance=governance,
                                   org_key=bytes.fromhex(dev[1]["sm2_public_key"]),
                                   nonce=gov.functions.accountNonce(fresh.address).call())
    proposed = _transact(w3, members[0], net.chain_id,
                         gov.functions.proposeReplaceAccounts(victim_org, [fresh.address], [consent]))
    (created,) = gov.events.ProposalCreated().process_receipt(proposed, errors=DISCARD)
    pid = created["args"]["id"]
    executed = None
    for member in members[2:]:
        receipt = _transact(w3, member, net.chain_id, gov.functions.vote(pid, True))
        if gov.events.ProposalExecuted().process_receipt(receipt, errors=DISCARD):
            executed = receipt
            break
    assert executed is not None, "the replacement did not pass"

    # at once, on every validator: the leaked account is no member's, its transaction is refused at CheckTx
    for node in [n.name for n in net.validators()]:
        net.wait_height(int(executed["blockNumber"]), [node], timeout=30)
        reply = net.w3(node).provider.make_request(  # type: ignore[arg-type]
            "eth_sendRawTransaction", [_transfer(leaked, net.chain_id, 1)])
        assert reply["error"]["code"] == -32003, reply
        assert "not an account of an active member" in reply["error"]["message"]
    sent = w3.eth.send_raw_transaction(_transfer(fresh, net.chain_id, 0))
    assert w3.eth.wait_for_transaction_receipt(sent, timeout=60)["status"] == 1
    assert gov.functions.orgAccounts(victim_org).call() == [fresh.address]
    assert w3.eth.get_transaction_count(leaked.address, "pending") == 1  # the refused one never entered the pool
