"""Evidence package verification rate vs the SM2 verify reference, same run.

Verifying a package costs two SM2 verifications (author, checkpoint) plus
parsing, one inclusion proof and, with the record, one commitment; so the
ceiling is half of `openssl speed sm2` verify/s.  The ratio printed is
packages/s over that ceiling.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _reference import openssl_speed_sm2, rate

from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.evidence import EvidenceBatch, verify_package
from shancheng.sdk.merkle import NoteSigner
from shancheng.sdk.records import RecordStatement, commit_salted

LEAVES = 4096


def main() -> int:
    author = SM2PrivateKey.generate()
    signer = NoteSigner("bench.example/gw", SM2PrivateKey.generate())
    batch = EvidenceBatch(origin="bench.example/log", signer=signer)
    record = {"hosp_rxno": "RX", "drugs": [{"drug_genname": "阿莫西林胶囊", "drug_cnt": 2}] * 3}
    commitment, salt = commit_salted(record)
    for i in range(LEAVES):
        batch.add(RecordStatement("prescription", batch.origin, i, commitment).sign(author))
    texts = [batch.package(i).dumps() for i in range(0, LEAVES, 7)]
    keys = [signer.verifier]
    state = {"i": 0}

    def one() -> None:
        text = texts[state["i"] % len(texts)]
        state["i"] += 1
        verify_package(text, record=record, salt=salt, checkpoint_keys=keys)

    _, ref_verify = openssl_speed_sm2()
    ours = rate(one, batch=20)
    ceiling = ref_verify / 2
    print(f"Evidence package verification (tree of {LEAVES} leaves, record + salt checked, pinned key)")
    print(f"  packages/s {ours:7.0f}   ceiling (openssl verify/s / 2) {ceiling:7.0f}   ratio {ours / ceiling:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
