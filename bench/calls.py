"""eth_call and eth_estimateGas on each engine, in-process, same run, same chain: the native engine
(revm, ``shancheng.chain.native.calls``) against py-evm (``shancheng.chain.calls``, the reference).

Two ledgers are opened from one development genesis (``shancheng.nodes.devgenesis``), one per engine, and each
answers the same requests through ``Ledger.call`` / ``Ledger.estimate_gas`` (what a call worker runs, without its
socket): a view (``Governance.orgName(1)``) and the estimate of a write a member sends
(``Governance.proposeAllowPeer``: a proposal stored, a vote counted; a binary search of about 15 runs). Printed:
requests per second per engine, best of the rounds, and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from eth_abi import encode
from eth_utils import keccak

from shancheng.chain import native
from shancheng.chain.ledger import ENGINES, Ledger
from shancheng.nodes.devgenesis import dev_genesis


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def rate(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="requests of each kind per round (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best is printed (default 3)")
    args = parser.parse_args()
    if not native.available():
        print(f"the native engine is not built: {native.BUILD_COMMAND}", file=sys.stderr)
        return 2
    genesis, _, accounts = dev_genesis(4321)
    governance = genesis.system_contracts["Governance"]
    member = bytes.fromhex(accounts[0]["address"][2:])
    view = {"from": member, "to": governance, "data": _selector("orgName(uint64)") + encode(["uint64"], [1])}
    write = {"from": member, "to": governance, "data": _selector("proposeAllowPeer(bytes20)") + encode(["bytes20"], [b"\x42" * 20])}
    best: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ledgers = {engine: Ledger.open(Path(tmp) / engine, genesis, engine=engine) for engine in ENGINES}
        try:
            answers = {engine: (ledger.call(view), ledger.estimate_gas(write)) for engine, ledger in ledgers.items()}
            if len(set(answers.values())) != 1:
                print(f"the engines answer differently: {answers}", file=sys.stderr)
                return 1
            print(f"estimate of proposeAllowPeer: {answers[ENGINES[0]][1]:,} gas on both engines", flush=True)
            for r in range(args.rounds):
                for engine, ledger in ledgers.items():
                    for kind, fn in (("eth_call", lambda lg=ledger: lg.call(view)),
                                     ("eth_estimateGas", lambda lg=ledger: lg.estimate_gas(write))):
                        best[engine, kind] = max(best.get((engine, kind), 0.0), rate(fn, args.n))
                print(f"round {r + 1}/{args.rounds} done", flush=True)
        finally:
            for ledger in ledgers.values():
                ledger.close()
    print(f"\nrequests per second, in-process, best of {args.rounds} x {args.n}:")
    for kind in ("eth_call", "eth_estimateGas"):
        reference, ours = best["py-evm", kind], best["native", kind]
        print(f"  {kind:16} py-evm (reference) {reference:9,.0f}/s   native {ours:9,.0f}/s   ratio {ours / reference:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
