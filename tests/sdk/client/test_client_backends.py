"""One SDK suite, three backends: the solo node, anvil (a foreign Ethereum chain with the system contracts deployed by
the test harness) and a 4-validator CometBFT network. Each test runs on each backend: what a chain cannot
guarantee is reported as such (anvil: no commit certificates, no chain proofs), never faked."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _batcher_checks import anchored_logs, check_exactly_once, genesis_verifier
from eth_account import Account

from shancheng.sdk import Client
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.client import AnchorConflict, Identity
from shancheng.sdk.crypto import SM2PrivateKey, sm3
from shancheng.sdk.evidence import UntrustedPackage, verify_package
from shancheng.testing import HD_PATH, MNEMONIC, build_system, deterministic_sm2_key, run_anvil
from shancheng.testing.network import local_network
from shancheng.testing.solo import SoloNode

pytestmark = pytest.mark.network

ZERO = b"\0" * 32
SENDERS = 4


@dataclass
class Backend:
    name: str
    connect: Callable[[], Client]  # a new client of the hospital organisation (another writer of its account)
    genesis: GenesisFile | None  # None on a foreign chain

    def __post_init__(self) -> None:
        self.client = self.connect()

    @property
    def shancheng(self) -> bool:
        return self.genesis is not None

    def verify(self, package: str, **kw: Any) -> Any:
        """Verify with the trust root the chain offers: the genesis file, or else the pinned checkpoint key."""
        if self.genesis is not None:
            return genesis_verifier(self.genesis)(package, **kw)
        return verify_package(package, checkpoint_keys=[self.client.identity.note_signer.verifier], **kw)


def _dev_identity(accounts: list[dict[str, Any]]) -> Identity:
    hospital = next(a for a in accounts if a["name"] == "hospital")
    return Identity.from_keys(sm2_key=SM2PrivateKey.from_int(int(hospital["sm2_private_key"], 16)),
                              eth_key=hospital["private_key"])


@pytest.fixture(scope="module", params=[
    "solo", "anvil", pytest.param("network", marks=[pytest.mark.network, pytest.mark.slow]),
])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    tmp: Path = tmp_path_factory.mktemp(request.param)
    if request.param == "solo":
        node = SoloNode.init_dev(tmp / "node")
        node.start()
        try:
            identity = node.identity("hospital", tmp / "keys")
            yield Backend("solo", lambda: Client.connect(node.url, identity=identity, genesis=node.genesis_path),
                          GenesisFile.load(node.genesis_path))
        finally:
            node.stop()
    elif request.param == "anvil":
        with run_anvil() as w3:
            system = build_system("anvil", w3)
            w3.provider.make_request("evm_setIntervalMining", [1])  # type: ignore[attr-defined]
            Account.enable_unaudited_hdwallet_features()
            index = list(w3.eth.accounts).index(system.org("hospital").account)
            account = Account.from_mnemonic(MNEMONIC, account_path=f"{HD_PATH}/{index}")
            identity = Identity.from_keys(sm2_key=deterministic_sm2_key("org:hospital"), eth_key=account.key)
            contracts = {"EvidenceRegistry": system.evidence.address, "Governance": system.governance.address}
            url = w3.provider.endpoint_uri  # type: ignore[attr-defined]
            yield Backend("anvil", lambda: Client.connect(url, identity=identity, confirmations=2,
                                                          contracts=contracts), None)
    else:
        with local_network(tmp / "net", validators=4) as net:
            net.wait_height(2)
            identity = _dev_identity(net.dev_accounts())
            urls = [n.url for n in net.validators()]
            yield Backend("network", lambda: Client.connect(urls, identity=identity, genesis=net.genesis_path),
                          GenesisFile.load(net.genesis_path))


def test_connect_reports_what_the_chain_guarantees(backend: Backend) -> None:
    caps, client = backend.client.capabilities, backend.client
    if backend.shancheng:
        assert backend.genesis is not None
        assert caps.chain == "shancheng" and caps.commit_certificates and caps.gm_precompile and caps.chain_proofs
        assert client.chain_id == backend.genesis.chain_id
        assert client.registry.address == backend.genesis.evidence_registry
    else:
        assert caps.chain == "ethereum"
        assert not (caps.commit_certificates or caps.gm_precompile or caps.chain_proofs or caps.validator_changes)
    assert client.org_id >= 1
    head = client.block_number()  # a block the node has: its number read back from the block itself
    assert int(client.rpc.call("eth_getBlockByNumber", [hex(head), False])["number"], 16) == head


def test_batched_records_are_anchored_once_and_their_packages_verify(backend: Backend, tmp_path: Path) -> None:
    client, origin = backend.client, f"hospital.example/log/backends-{backend.name}"
    records = {n: {"hosp_rxno": f"RX{n:04d}", "drug": "阿莫西林胶囊", "n": n} for n in range(40)}
    with client.batcher(store=f"sqlite:///{tmp_path / 'log.db'}", origin=origin, max_records=16,
                        max_age=0.2) as batcher:
        ids = batcher.add_many([records[n] for n in range(30)], kind="prescription")
        ids += [batcher.add(records[n], kind="prescription") for n in range(30, 40)]
        assert ids == list(range(40))
        batcher.flush(timeout=120)
        check_exactly_once(client, batcher, ids, verify=backend.verify, records=records)
        package = batcher.evidence_package(39)
        result = backend.verify(package.dumps(), record=records[39], salt=batcher.salt(39))
        if backend.shancheng:
            assert package.chain is not None and result.anchor is not None
            assert result.anchor.org.name == "hospital" and result.trust_root == "genesis"
        else:
            assert package.chain is None, "no chain proofs on a foreign chain"
            assert result.anchor is None and result.checkpoint_key_pinned
            with pytest.raises(UntrustedPackage, match="no trust root"):  # nothing on chain vouches for the key
                verify_package(package.dumps())
            anchor = batcher.anchor_of(39)
            assert client.block_number() - anchor.block_number + 1 >= 2, "anchored with 2 confirmations"


def test_anchoring_the_same_checkpoint_again_is_idempotent(backend: Backend) -> None:
    client, origin = backend.client, f"hospital.example/log/idem-{backend.name}"
    root = sm3(b"a checkpoint root " + backend.name.encode())
    first = client.anchor_checkpoint(origin, sequence=1, tree_size=3, root=root, prev_root=ZERO)
    again = backend.connect().anchor_checkpoint(origin, sequence=1, tree_size=3, root=root, prev_root=ZERO)
    assert again == first
    assert len(anchored_logs(client, origin)) == 1, "no second anchor"
    with pytest.raises(AnchorConflict, match="another writer"):
        client.anchor_checkpoint(origin, sequence=1, tree_size=4, root=sm3(b"another root"), prev_root=ZERO)


def test_concurrent_senders_of_one_account_get_distinct_nonces(backend: Backend) -> None:
    clients = [backend.client, backend.connect()]  # two writers of one account: nonces collide and resync
    anchors: dict[str, Any] = {}
    errors: list[BaseException] = []

    def send(k: int) -> None:
        origin = f"hospital.example/log/nonce-{backend.name}-{k}"
        try:
            anchors[origin] = clients[k % 2].anchor_checkpoint(origin, sequence=1, tree_size=1,
                                                               root=sm3(origin.encode()), prev_root=ZERO)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    # 4 threads: a Shancheng node serves at most 4 concurrent eth_call/eth_getLogs per client address (-32005)
    threads = [threading.Thread(target=send, args=(k,)) for k in range(SENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert len(anchors) == SENDERS
    nonces = []
    for origin, anchor in anchors.items():
        tx = backend.client.rpc.call("eth_getTransactionByHash", ["0x" + anchor.transaction_hash.hex()])
        nonces.append(int(tx["nonce"], 16))
        assert backend.client.source_head(origin).tree_size == 1
    assert len(set(nonces)) == SENDERS, f"each transaction has its own nonce: {sorted(nonces)}"
