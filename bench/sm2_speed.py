"""SM2 sign and verify through shancheng.sdk.crypto vs `openssl speed sm2`, one core, same run.

Target (issue 2): ratio >= 0.8 for both.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _reference import openssl_speed_sm2, rate

from shancheng.sdk.crypto import SM2PrivateKey


def main() -> int:
    key = SM2PrivateKey.generate()
    pub = key.public_key()
    message = b"x" * 64
    signature = key.sign(message)
    ref_sign, ref_verify = openssl_speed_sm2()
    ours_sign = rate(lambda: key.sign(message))
    ours_verify = rate(lambda: pub.verify(signature, message))
    print("SM2 (one core)              ours/s   openssl speed/s   ratio")
    print(f"  sign                    {ours_sign:8.0f}   {ref_sign:15.0f}   {ours_sign / ref_sign:5.2f}")
    print(f"  verify                  {ours_verify:8.0f}   {ref_verify:15.0f}   {ours_verify / ref_verify:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
