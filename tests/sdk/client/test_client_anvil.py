"""The client on a foreign Ethereum chain (anvil, interval mining): the Shancheng guarantees are reported unavailable,
not faked, and the batcher anchors with a stated number of confirmations."""

from __future__ import annotations

import pytest
from eth_account import Account

from shancheng.sdk import Client
from shancheng.sdk.client import Identity
from shancheng.sdk.evidence import verify_package
from shancheng.testing import HD_PATH, MNEMONIC, build_system, deterministic_sm2_key, run_anvil

pytestmark = pytest.mark.network

CONFIRMATIONS = 3


@pytest.fixture(scope="module")
def anvil():
    with run_anvil() as w3:
        system = build_system("anvil", w3)
        w3.provider.make_request("evm_setIntervalMining", [1])  # blocks keep coming: confirmations can accrue
        Account.enable_unaudited_hdwallet_features()
        org = system.org("hospital")
        index = list(w3.eth.accounts).index(org.account)
        account = Account.from_mnemonic(MNEMONIC, account_path=f"{HD_PATH}/{index}")
        identity = Identity.from_keys(sm2_key=deterministic_sm2_key("org:hospital"), eth_key=account.key)
        client = Client.connect(
            w3.provider.endpoint_uri, identity=identity, confirmations=CONFIRMATIONS,
            contracts={"EvidenceRegistry": system.evidence.address, "Governance": system.governance.address},
        )
        yield client


def test_a_foreign_chain_reports_no_certificates_no_precompile_no_chain_proofs(anvil):
    caps = anvil.capabilities
    assert caps.chain == "ethereum"
    assert not caps.commit_certificates and not caps.gm_precompile and not caps.chain_proofs
    assert not caps.validator_changes


def test_anchoring_on_anvil_waits_for_confirmations_and_packages_verify_with_the_checkpoint_key(anvil, tmp_path):
    origin = "hospital.example/log/anvil"
    with anvil.batcher(store=f"sqlite:///{tmp_path / 'anvil.db'}", origin=origin, max_age=0.1) as batcher:
        record = {"hosp_rxno": "RX-A1"}
        rid = batcher.add(record, kind="prescription")
        batcher.flush(timeout=60)
        anchor = batcher.anchor_of(rid)
        assert anvil.block_number() - anchor.block_number + 1 >= CONFIRMATIONS
        head = anvil.source_head(origin)
        assert (head.sequence, head.tree_size) == (1, 1)
        package = batcher.evidence_package(rid)
        assert package.chain is None, "no chain proofs on a foreign chain"
        result = verify_package(package.dumps(), checkpoint_keys=[anvil.identity.note_signer.verifier],
                                record=record, salt=batcher.salt(rid))
        assert result.checkpoint_key_pinned and result.record_checked
