"""Free replacement on a real node process (issue 10, point 7): a member cancels its own transaction stuck
behind a nonce gap without any fee, with the node's default rule (1 s minimum age, 3 free replacements).

`shancheng node init --dev` + `node start` (as tests/nodes/test_node_process.py), driven over JSON-RPC.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
from test_node_process import NodeProcess, cli, dev_account
from web3 import Web3

pytestmark = pytest.mark.network

MIN_AGE = 1.0  # the documented default (README, "Replacing and cancelling a pending transaction")


def _raw(w3: Web3, account: Any, nonce: int, **fields: Any) -> str:
    tx = {"maxFeePerGas": 0, "maxPriorityFeePerGas": 0, "chainId": w3.eth.chain_id, "nonce": nonce, "value": 0,
          "gas": 21_000, **fields}
    return "0x" + bytes(account.sign_transaction(tx).raw_transaction).hex()


def _send(node: NodeProcess, raw: str) -> dict[str, Any]:
    return node.rpc("eth_sendRawTransaction", raw)


def test_a_member_cancels_a_stuck_transaction_for_free_and_the_cancel_is_mined(tmp_path: Path) -> None:
    """The hole: on this zero-fee chain a pending transaction could never be replaced or cancelled (a
    replacement needed a 10 % higher non-zero fee), so a transaction stuck behind a nonce gap stayed forever.
    Now: a too-early replacement and one over the limit are refused with clear JSON-RPC errors; a 0-value
    self-transfer with the same nonce replaces it after the minimum age; once the gap is filled the cancel,
    not the original, is mined."""
    home = tmp_path / "node"
    assert cli("node", "init", "--dev", "--home", str(home)).returncode == 0
    node = NodeProcess(home).start()
    try:
        w3 = node.w3()
        hospital, pharmacy = dev_account(home, "hospital"), dev_account(home, "pharmacy")
        n = w3.eth.get_transaction_count(hospital.address, "pending")
        gapped = n + 1  # nonce n is not sent yet: everything at n + 1 waits behind the gap

        first = _raw(w3, hospital, gapped, to=pharmacy.address, data=b"\x01", gas=30_000)
        cancel = _raw(w3, hospital, gapped, to=hospital.address)  # signed before: sent at once after the original
        original = _send(node, first)["result"]
        early = _send(node, cancel)["error"]
        assert early["code"] == -32000 and early["message"].startswith("replacement transaction underpriced")
        assert f"once it is {MIN_AGE:g} s old" in early["message"] and "\n" not in early["message"]

        replaced = [original]
        # the minimum age is the rule under test: each replacement waits it out (and 0.1 s for the clocks)
        for data in (b"\x02", b"\x03"):  # two free replacements (different payloads), each after the minimum age
            time.sleep(MIN_AGE + 0.1)
            replaced.append(_send(node, _raw(w3, hospital, gapped, to=pharmacy.address, data=data,
                                             gas=30_000))["result"])
        time.sleep(MIN_AGE + 0.1)
        cancelled = _send(node, cancel)  # the third: the cancel
        assert "result" in cancelled, cancelled
        time.sleep(MIN_AGE + 0.1)
        over = _send(node, _raw(w3, hospital, gapped, to=hospital.address, gas=21_001))["error"]
        assert over["code"] == -32000 and "has had 3 free replacements, the limit (3)" in over["message"]

        assert all(node.rpc("eth_getTransactionByHash", h)["result"] is None for h in replaced)
        pending = node.rpc("eth_getTransactionByHash", cancelled["result"])["result"]
        assert pending["blockNumber"] is None and pending["nonce"] == hex(gapped)

        filler = _send(node, _raw(w3, hospital, n, to=pharmacy.address))["result"]
        receipt = w3.eth.wait_for_transaction_receipt(cancelled["result"], timeout=30)
        assert receipt.status == 1 and w3.eth.wait_for_transaction_receipt(filler, timeout=30).status == 1
        mined = w3.eth.get_transaction(cancelled["result"])
        assert (mined["from"], mined["to"], mined["value"], mined["nonce"]) == (hospital.address, hospital.address,
                                                                                 0, gapped)
        assert all(node.rpc("eth_getTransactionReceipt", h)["result"] is None for h in replaced)
        assert w3.eth.get_transaction_count(hospital.address, "latest") == gapped + 1
        assert node.kill(signal.SIGTERM) == 0
        assert "Traceback" not in node.output()
    finally:
        if node.proc and node.proc.poll() is None:
            node.kill(signal.SIGKILL)
