"""What Ethereum tools rely on beyond the basic methods, checked against anvil, the RPC server over an in-process
py-evm backend and a real dev node: access lists in eth_call / eth_estimateGas, eth_createAccessList, the
``newPendingTransactions`` subscription, and go-ethereum's wording for a send or call the sender cannot pay.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from _endpoints import Endpoint, compile_contracts
from _rpc_backend import pyevm_rpc
from eth_account import Account
from web3 import Web3
from websockets.sync.client import connect as ws_connect

from shancheng.testing import HD_PATH, MNEMONIC, run_anvil
from shancheng.testing.loadgen import dev_node

pytestmark = [pytest.mark.network, pytest.mark.slow]

SOURCE = "AccessLists.sol"
WATCHED = "0x" + "77" * 20
DEADLINE = 30.0
FUNDS = "insufficient funds for gas * price + value"

Account.enable_unaudited_hdwallet_features()


@pytest.fixture(scope="module")
def endpoints() -> Iterator[list[Endpoint]]:
    mnemonic_account = Account.from_mnemonic(MNEMONIC, account_path=f"{HD_PATH}/0")
    with contextlib.ExitStack() as stack:
        w3 = stack.enter_context(run_anvil())
        anvil_url = w3.provider.endpoint_uri
        server, _backend = stack.enter_context(pyevm_rpc())
        node = stack.enter_context(dev_node(block_interval=0.2))
        yield [Endpoint("anvil", anvil_url, anvil_url.replace("http://", "ws://"), mnemonic_account, False),
               Endpoint("shancheng-rpc/pyevm", server.http_url, server.ws_url, mnemonic_account),
               Endpoint("shancheng-node", node.url, node.ws_url, node.account)]


@pytest.fixture(scope="module")
def artifacts() -> dict[str, Any]:
    return compile_contracts(SOURCE)


@dataclass
class Deployed:
    endpoint: Endpoint
    w3: Web3
    caller: Any  # the AccessCaller contract
    target: str


def _request(w3: Web3, method: str, params: list[Any]) -> dict[str, Any]:
    return dict(w3.provider.make_request(method, params))  # type: ignore[arg-type]


def _send(endpoint: Endpoint, w3: Web3, tx: dict[str, Any]) -> Any:
    acct = endpoint.account
    tx = {"chainId": w3.eth.chain_id, "nonce": w3.eth.get_transaction_count(acct.address, "pending"),
          "gasPrice": 0, **tx}
    tx_hash = w3.eth.send_raw_transaction(acct.sign_transaction(tx).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=DEADLINE, poll_latency=0.05)


def _deploy(endpoint: Endpoint, artifacts: dict[str, Any]) -> Deployed:
    w3 = Web3(Web3.HTTPProvider(endpoint.http_url, request_kwargs={"timeout": 60}))
    me = endpoint.account.address

    def create(name: str, *args: Any) -> str:
        factory = w3.eth.contract(abi=artifacts[name]["abi"], bytecode=artifacts[name]["bytecode"])
        receipt = _send(endpoint, w3, factory.constructor(*args).build_transaction({"from": me, "gasPrice": 0,
                                                                                     "gas": 1_000_000}))
        assert receipt["status"] == 1
        return str(receipt["contractAddress"])

    target = create("AccessTarget")
    caller = w3.eth.contract(address=create("AccessCaller", target), abi=artifacts["AccessCaller"]["abi"])
    return Deployed(endpoint, w3, caller, target)


@pytest.fixture(scope="module")
def deployed(endpoints: list[Endpoint], artifacts: dict[str, Any]) -> list[Deployed]:
    return [_deploy(ep, artifacts) for ep in endpoints]


def _poke(d: Deployed, mark: int) -> dict[str, Any]:
    data = d.caller.encode_abi("poke", [mark, WATCHED])
    return {"from": d.endpoint.account.address, "to": d.caller.address, "data": data}


def _listed(access_list: list[dict[str, Any]], d: Deployed) -> set[tuple[str, tuple[str, ...]]]:
    """An access list with the endpoint's own contract addresses named, so endpoints compare."""
    names = {d.caller.address.lower(): "caller", d.target.lower(): "target"}
    return {(names.get(e["address"].lower(), e["address"].lower()), tuple(sorted(e["storageKeys"])))
            for e in access_list}


def test_create_access_list_agrees_with_anvil(deployed: list[Deployed]) -> None:
    answers = {}
    for d in deployed:
        reply = _request(d.w3, "eth_createAccessList", [_poke(d, 5), "latest"])
        assert "result" in reply, (d.endpoint.name, reply)
        answers[d.endpoint.name] = (_listed(reply["result"]["accessList"], d), reply["result"]["gasUsed"])
    mark_slot = Web3.solidity_keccak(["uint256", "uint256"], [5, 1]).to_0x_hex()  # marks[5]
    zero = "0x" + "00" * 32
    expected = {("caller", (zero, mark_slot)), ("target", (zero,)), (WATCHED, ())}
    assert all(listed == expected for listed, _ in answers.values()), answers
    assert len({gas for _, gas in answers.values()}) == 1, answers


def test_create_access_list_of_a_reverting_call_reports_the_error(deployed: list[Deployed]) -> None:
    for d in deployed:
        if not d.endpoint.shancheng:
            continue  # anvil answers a revert with an error; geth (and this node) with the list and "error"
        call = {"from": d.endpoint.account.address, "to": d.caller.address, "data": d.caller.encode_abi("fail", [])}
        result = _request(d.w3, "eth_createAccessList", [call])["result"]
        assert result["error"] == "execution reverted"
        assert int(result["gasUsed"], 16) > 21_000


def test_estimate_with_an_access_list_agrees_with_anvil_and_the_transaction_succeeds(
        deployed: list[Deployed]) -> None:
    estimates = {}
    for mark, d in enumerate(deployed, start=10):
        # listing the recipient and its slot costs 2,400 + 1,900 gas and saves 2,000: an estimate that ignored
        # the list left the transaction 2,300 gas short
        access_list = [{"address": d.caller.address, "storageKeys": ["0x" + "00" * 32]}]
        tx = {**_poke(d, mark), "accessList": access_list}
        with_list = int(_request(d.w3, "eth_estimateGas", [tx])["result"], 16)
        without = int(_request(d.w3, "eth_estimateGas", [_poke(d, mark)])["result"], 16)
        estimates[d.endpoint.name] = (with_list, without)
        receipt = _send(d.endpoint, d.w3, {"type": 1, "to": d.caller.address, "data": tx["data"],
                                           "accessList": access_list, "gas": with_list})
        assert receipt["status"] == 1, (d.endpoint.name, receipt)
        assert with_list == without + 2_300, (d.endpoint.name, with_list, without)
    assert len({e[0] for e in estimates.values()}) == 1, estimates


def test_a_call_or_estimate_the_sender_cannot_pay_gets_geths_wording(deployed: list[Deployed]) -> None:
    for d in deployed:
        if not d.endpoint.shancheng:
            continue  # anvil estimates a zero-fee transfer regardless of the balance
        me = d.endpoint.account.address
        balance = d.w3.eth.get_balance(me)
        transfer = {"from": me, "to": WATCHED, "value": hex(balance + 1)}
        for method in ("eth_call", "eth_estimateGas"):
            error = _request(d.w3, method, [transfer])["error"]
            assert error["code"] == -32000
            assert error["message"] == f"{FUNDS}: address {me} have {balance} want {balance + 1}", (d, error)


def test_a_send_the_sender_cannot_pay_gets_geths_wording(deployed: list[Deployed]) -> None:
    for d in deployed:
        if d.endpoint.name == "shancheng-rpc/pyevm":
            continue  # that backend's pool is a test stand-in; the node's and anvil's pools are the real ones
        acct = d.endpoint.account
        balance = d.w3.eth.get_balance(acct.address)
        tx = {"chainId": d.w3.eth.chain_id, "nonce": d.w3.eth.get_transaction_count(acct.address, "pending"),
              "gasPrice": 0, "gas": 21_000, "to": WATCHED, "value": balance + 1}
        raw = acct.sign_transaction(tx).raw_transaction.to_0x_hex()
        error = _request(d.w3, "eth_sendRawTransaction", [raw])["error"]
        assert error["message"].lower().startswith(FUNDS), (d.endpoint.name, error)


def _ws_call(ws: Any, method: str, params: list[Any]) -> Any:
    ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=DEADLINE))
        if message.get("id") == 1:
            assert "result" in message, message
            return message["result"]
    raise AssertionError(f"no answer to {method}")


def test_new_pending_transactions_subscription_sees_a_send(deployed: list[Deployed]) -> None:
    for d in deployed:
        with ws_connect(d.endpoint.ws_url, max_size=None) as ws:
            sid = _ws_call(ws, "eth_subscribe", ["newPendingTransactions"])
            heads = _ws_call(ws, "eth_subscribe", ["newHeads"])
            receipt = _send(d.endpoint, d.w3, {"to": WATCHED, "value": 0, "gas": 21_000})
            sent = receipt["transactionHash"].to_0x_hex()
            seen: list[str] = []
            deadline = time.monotonic() + DEADLINE
            while sent not in seen and time.monotonic() < deadline:
                message = json.loads(ws.recv(timeout=DEADLINE))
                params = message.get("params", {})
                if params.get("subscription") == sid:
                    seen.append(params["result"])
                else:
                    assert params.get("subscription") == heads, message  # heads go to their own subscription
            assert sent in seen, (d.endpoint.name, seen)
            assert all(isinstance(h, str) and len(h) == 66 for h in seen)
            assert _ws_call(ws, "eth_unsubscribe", [sid]) is True
