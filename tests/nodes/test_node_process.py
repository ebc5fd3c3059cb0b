"""A real node process: `shancheng node init --dev` + `node start`, driven over JSON-RPC with web3.py.

Covers the node issue's "show it" items that need a process: members transact and outsiders are refused
at admission; SIGKILL under load loses no committed block or receipt and the node keeps producing after
a restart; SIGTERM stops it cleanly; bad input gets JSON-RPC errors while the node keeps serving.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from eth_account import Account
from web3 import Web3

from shancheng.contracts.artifacts import load
from shancheng.nodes.rpc import client as rpc_client
from shancheng.testing import free_port

pytestmark = pytest.mark.network


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", *args], capture_output=True, text=True,
                         timeout=timeout, check=False)
    assert "Traceback" not in out.stderr, out.stderr
    return out


class NodeProcess:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.ws_port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> NodeProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shancheng.sdk.cli", "node", "start", "--home", str(self.home),
             "--rpc-port", str(self.port), "--ws-port", str(self.ws_port), "--block-interval", "0.2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"node exited early: {self.proc.stdout.read() if self.proc.stdout else ''}")
            try:
                self.rpc("eth_blockNumber")
                return self
            except OSError:
                time.sleep(0.1)
        raise AssertionError("node did not start serving within 60 s")

    def rpc(self, method: str, *params: object, raw: bytes | None = None) -> dict:
        try:
            return rpc_client.post(self.url, raw if raw is not None else rpc_client.request(method, list(params)))
        except urllib.error.HTTPError as exc:
            return {"http_status": exc.code}

    def w3(self) -> Web3:
        return Web3(Web3.HTTPProvider(self.url, request_kwargs={"timeout": 30}))

    def kill(self, sig: int) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def output(self) -> str:
        return self.proc.stdout.read() if self.proc and self.proc.stdout else ""


@pytest.fixture()
def home(tmp_path):
    out = cli("node", "init", "--dev", "--home", str(tmp_path / "node"))
    assert out.returncode == 0, out.stderr
    return tmp_path / "node"


@pytest.fixture()
def node(home):
    n = NodeProcess(home).start()
    yield n
    if n.proc and n.proc.poll() is None:
        n.kill(signal.SIGKILL)


def dev_account(home: Path, name: str):
    accounts = json.loads((home / "dev-accounts.json").read_text())["accounts"]
    return Account.from_key(next(a for a in accounts if a["name"] == name)["private_key"])


def send(w3: Web3, account, tx: dict) -> bytes:
    tx = {"maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "chainId": w3.eth.chain_id,
          "nonce": w3.eth.get_transaction_count(account.address, "pending"), **tx}
    if "gas" not in tx:
        tx["gas"] = w3.eth.estimate_gas({k: v for k, v in tx.items() if k != "nonce"} | {"from": account.address})
    return w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)


def test_init_writes_a_dev_network_and_refuses_to_overwrite(home):
    genesis = json.loads((home / "genesis.json").read_text())
    assert genesis["format"] == "shancheng-genesis" and len(genesis["validators"]) == 1
    assert set(genesis["system_contracts"]) >= {"Governance", "EvidenceRegistry", "PrescriptionFlow"}
    dev = json.loads((home / "dev-accounts.json").read_text())
    assert "DEVELOPMENT ONLY" in dev["warning"] and len(dev["accounts"]) == 9
    assert (home / "dev-accounts.json").stat().st_mode & 0o777 == 0o600
    assert "ENCRYPTED PRIVATE KEY" in (home / "node-key.pem").read_text()
    again = cli("node", "init", "--dev", "--home", str(home))
    assert again.returncode == 2 and "already holds a node" in again.stderr


def test_members_transact_outsiders_are_refused(node, home):
    w3 = node.w3()
    hospital = dev_account(home, "hospital")
    art = load("GmProbe")
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx_hash = send(w3, hospital, {"data": factory.constructor().data_in_transaction, "gas": 2_000_000})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
    assert receipt.status == 1 and receipt.contractAddress
    probe = w3.eth.contract(address=receipt.contractAddress, abi=art.abi)
    assert probe.functions.available().call() is True  # the GM precompile is live on this chain
    assert probe.functions.sm3(b"abc").call().hex().endswith("8f4ba8e0")

    outsider = Account.create()
    with pytest.raises(Exception) as err:
        send(w3, outsider, {"to": hospital.address, "value": 0, "gas": 21_000})
    assert "not an account of an active member organisation" in str(err.value)

    commit = node.rpc("shancheng_getCommit", hex(receipt.blockNumber))["result"]
    assert commit["block_hash"] == "0x" + bytes(receipt.blockHash).hex() and len(commit["signatures"]) == 1
    proof = node.rpc("shancheng_getReceiptProof", "0x" + bytes(tx_hash).hex())["result"]
    assert proof["block_number"] == receipt.blockNumber
    status = cli("node", "status", "--rpc", node.url)
    assert status.returncode == 0 and "chain       2026" in status.stdout


def test_bad_input_gets_json_rpc_errors_and_the_node_keeps_serving(node):
    assert node.rpc("", raw=b"{not json")["error"]["code"] == -32700
    assert node.rpc("eth_getBalance", "0x12", "latest")["error"]["code"] == -32602
    assert node.rpc("eth_sendRawTransaction", "0xdeadbeef")["error"]["code"] in (-32602, -32000)
    assert node.rpc("no_suchMethod")["error"]["code"] == -32601
    assert node.rpc("", raw=b"[" + b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},' * 5 + b"1]")
    big = node.rpc("", raw=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_call",
                                       "params": [{"data": "0x" + "00" * 2_000_000}, "latest"]}).encode())
    assert big.get("http_status") == 413 or big["error"]["code"] in (-32600, -32602)
    assert int(node.rpc("eth_chainId")["result"], 16) == 2026


# init code returning runtime `SSTORE(calldata[0:32], 1); LOG1(0, 0, calldata[0:32])`
_SLOT_WRITER = bytes.fromhex("600e80600b6000396000f3" "600035806001905560006000a100")


def test_sigkill_under_load_keeps_every_committed_block(home):
    node = NodeProcess(home).start()
    w3 = node.w3()
    accounts = [dev_account(home, name) for name in ("hospital", "pharmacy", "manufacturer")]
    fee = {"value": 0, "maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "chainId": 2026}
    deploy = w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(accounts[0].sign_transaction(
        {**fee, "data": _SLOT_WRITER, "gas": 200_000, "nonce": 0}).raw_transaction), timeout=30)
    writer = deploy.contractAddress
    nonces = {a.address: 0 for a in accounts}
    nonces[accounts[0].address] = 1
    sent: list[tuple[bytes, int]] = []  # (tx hash, storage slot it writes)
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline:  # keep the node busy (transfers and contract storage), then kill it
        for a in accounts:
            slot = len(sent)
            tx = {**fee, "to": writer, "data": slot.to_bytes(32, "big"), "gas": 60_000, "nonce": nonces[a.address]}
            sent.append((bytes(w3.eth.send_raw_transaction(a.sign_transaction(tx).raw_transaction)), slot))
            nonces[a.address] += 1
        if w3.eth.block_number >= 4 and len(sent) > 60:
            break
    before = w3.eth.block_number
    committed = {h: (slot, w3.eth.get_transaction_receipt(h)) for h, slot in sent[:20] if _mined(w3, h)}
    assert committed
    blocks = {n: w3.eth.get_block(n).hash for n in range(before + 1)}
    assert node.kill(signal.SIGKILL) == -signal.SIGKILL

    restarted = NodeProcess(home).start()
    try:
        w3 = restarted.w3()
        assert w3.eth.block_number >= before
        for n, h in blocks.items():
            assert w3.eth.get_block(n).hash == h
        for h, (slot, receipt) in committed.items():
            again = w3.eth.get_transaction_receipt(h)
            assert again.blockHash == receipt.blockHash and again.status == 1
            assert int.from_bytes(w3.eth.get_storage_at(writer, slot), "big") == 1  # its storage write survived
        # the node keeps producing on top of that storage: a fresh write to the contract is mined
        a = accounts[0]
        tx = {**fee, "to": writer, "data": (10**6).to_bytes(32, "big"), "gas": 60_000,
              "nonce": w3.eth.get_transaction_count(a.address, "pending")}
        receipt = w3.eth.wait_for_transaction_receipt(
            w3.eth.send_raw_transaction(a.sign_transaction(tx).raw_transaction), timeout=30)
        assert receipt.status == 1 and receipt.blockNumber > before
        assert int.from_bytes(w3.eth.get_storage_at(writer, 10**6), "big") == 1
        assert restarted.kill(signal.SIGTERM) == 0
        assert "stopped cleanly" in restarted.output()
    finally:
        if restarted.proc and restarted.proc.poll() is None:
            restarted.kill(signal.SIGKILL)


def _mined(w3: Web3, tx_hash: bytes) -> bool:
    try:
        w3.eth.get_transaction_receipt(tx_hash)
        return True
    except Exception:  # noqa: BLE001 - TransactionNotFound while pending
        return False


def test_a_second_node_on_the_same_home_is_refused(node, home):
    out = cli("node", "start", "--home", str(home), "--rpc-port", str(free_port()), "--ws-port", str(free_port()))
    assert out.returncode == 1 and "another node" in out.stderr
