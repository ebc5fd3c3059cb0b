"""``shancheng demo``: the end-to-end evidence flow on one machine.

An organisation creates its SM2 key; three sample records (an e-prescription,
an HJ 212 air-quality reading, a drug-trace shipping event) are committed
with salted SM3, signed by their author, batched into an SM3 Merkle tree under
a signed checkpoint; one evidence package per record is written and then
verified by running ``shancheng evidence verify`` as an auditor would.  A
tampered copy of one package is verified too, and must be refused.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..crypto import SM2PrivateKey
from ..errors import ShanchengError
from ..evidence import EvidenceBatch, EvidencePackage
from ..files import make_private_folder, write_private_file
from ..merkle import NoteSigner
from ..records import RecordStatement, commit_salted
from .keys import load_key_file, write_key_file

SAMPLE_RECORDS: list[tuple[str, str, dict[str, Any]]] = [
    (
        "prescription",
        "hosp-001",
        {
            "hosp_rxno": "RX20240615000123",
            "rx_type_code": "1",
            "prsc_time": "2024-06-15T09:30:00+08:00",
            "valid_days": 3,
            "rept_flag": "0",
            "patient": {"name": "张三", "id_no": "500103199001011234"},
            "drugs": [
                {
                    "med_list_codg": "XJ01CAA040A001010100028",
                    "drug_genname": "阿莫西林胶囊",
                    "drug_spec": "0.25g*24粒",
                    "drug_cnt": 2,
                    "drug_cnt_unit": "盒",
                    "medc_days": 7,
                }
            ],
        },
    ),
    (
        "hj212-reading",
        "3034257BF400B7800004A7B1",
        {
            "QN": "20240615103000123",
            "ST": "22",
            "CN": "2011",
            "MN": "3034257BF400B7800004A7B1",
            "DataTime": "20240615103000",
            "values": {
                "a34004": {"Rtd": "38.2", "Flag": "N"},
                "a34002": {"Rtd": "61.0", "Flag": "N"},
                "a21026": {"Rtd": "8.0", "Flag": "N"},
                "a21004": {"Rtd": "42.5", "Flag": "N"},
                "a05024": {"Rtd": "96.0", "Flag": "N"},
                "a21005": {"Rtd": "0.72", "Flag": "N"},
            },
        },
    ),
    (
        "drug-trace-event",
        "pharma-6901234",
        {
            "type": "ObjectEvent",
            "eventTime": "2024-06-15T09:12:00+08:00",
            "eventTimeZoneOffset": "+08:00",
            "epcList": ["https://id.gs1.org/01/06901234567892/21/A1B2C3D4E5"],
            "action": "OBSERVE",
            "bizStep": "shipping",
            "disposition": "in_transit",
            "readPoint": {"id": "urn:epc:id:sgln:6901234.00000.0"},
            "bizTransactionList": [
                {"type": "desadv", "bizTransaction": "urn:epcglobal:cbv:bt:6901234000009:DA20240615001"}
            ],
        },
    ),
]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    d = subparsers.add_parser("demo", help="run the end-to-end evidence demo on this machine (no chain)")
    d.add_argument("--out", default="demo-out", metavar="DIR", help="folder for keys, records and packages")
    d.set_defaults(func=cmd_demo)


#: Anchors a signed batch somewhere (a chain) and returns how to add the proof of that to a package.
Anchor = Callable[[EvidenceBatch], Callable[[EvidencePackage], EvidencePackage]]


def _step(n: int, text: str) -> None:
    print(f"[{n}/7] {text}", flush=True)


def _verify_cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "shancheng.sdk.cli", "evidence", "verify", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def run_demo(
    out: Path,
    *,
    origin: str = "shancheng.demo/log/district-1",
    author: SM2PrivateKey | None = None,
    log_key: SM2PrivateKey | None = None,
    anchor: Anchor | None = None,
    genesis: Path | None = None,
) -> int:
    """The evidence flow; with ``anchor`` the batch is anchored on a chain and packages carry the proof.

    ``log_key`` signs the checkpoints: on a chain it must be the anchoring organisation's registered key (the
    verifier proves that); without a chain a fresh key is made and the auditor pins it."""
    for sub in ("records", "packages"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for sub in ("keys", "salts"):  # private: keys, their password and the record salts
        make_private_folder(out / sub)

    _step(1, "creating the organisation's SM2 keys (scrypt + SM4-CBC encrypted PKCS#8)")
    password_file = out / "keys" / "password.txt"
    if not password_file.exists():
        write_private_file(password_file, secrets.token_urlsafe(24).encode() + b"\n")
    password = password_file.read_bytes().split(b"\n", 1)[0]
    keys = {}
    for name in ("author", "gateway"):
        path = out / "keys" / f"{name}.pem"
        if name == "author" and author is not None:
            keys[name] = author
        elif path.exists():
            keys[name] = load_key_file(str(path), password)
        else:
            keys[name] = SM2PrivateKey.generate()
            write_key_file(path, keys[name], password)
        print(f"      {name:8s} sm3 address 0x{keys[name].public_key().sm3_address().hex()}")

    _step(2, "committing and signing the sample records (RFC 8785 JSON, salted SM3, SM2)")
    signer = NoteSigner("shancheng.demo/gateway", keys["gateway"] if log_key is None else log_key)
    batch = EvidenceBatch(origin=origin, signer=signer)
    for kind, _, record in SAMPLE_RECORDS:
        commitment, salt = commit_salted(record)
        # one log: a record's source is the log's origin and its sequence the next leaf index
        statement = RecordStatement(kind=kind, source=origin, sequence=batch.size, commitment=commitment)
        signed = statement.sign(keys["author"])
        batch.add(signed)
        (out / "records" / f"{kind}.json").write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n")
        write_private_file(out / "salts" / f"{kind}.hex", salt.hex().encode() + b"\n", force=True)
        print(f"      {kind:17s} commitment {commitment.value.hex()}")

    _step(3, f"batching into an SM3 Merkle tree (RFC 9162) and signing the checkpoint ({batch.size} leaves)")
    note = batch.checkpoint()
    (out / "checkpoint.txt").write_text(note)
    print("      " + note.replace("\n", "\n      ").rstrip())

    if anchor is None:
        _step(4, "anchoring: skipped (no chain; `shancheng dev` anchors on a running node)")
        attach: Callable[[EvidencePackage], EvidencePackage] = lambda package: package
    else:
        _step(4, "anchoring the checkpoint on chain (EvidenceRegistry.anchorBatch, SM2-signed by the org)")
        attach = anchor(batch)

    _step(5, "writing one evidence package per record")
    for index, (kind, _, _) in enumerate(SAMPLE_RECORDS):
        (out / "packages" / f"{kind}.json").write_text(attach(batch.package(index)).dumps())
        print(f"      {out / 'packages' / f'{kind}.json'}")

    _step(6, "verifying every package offline with `shancheng evidence verify`")
    # the trust root: the genesis file alone for anchored packages, else the log's pinned checkpoint key
    vkey = signer.verifier.to_vkey()
    extra = ["--genesis", str(genesis)] if genesis is not None else ["--checkpoint-key", vkey]
    failures = 0
    for kind, _, _ in SAMPLE_RECORDS:
        salt_hex = (out / "salts" / f"{kind}.hex").read_text().strip()
        res = _verify_cli(
            [
                str(out / "packages" / f"{kind}.json"),
                "--record",
                str(out / "records" / f"{kind}.json"),
                "--salt",
                salt_hex,
                *extra,
            ]
        )
        status = "valid" if res.returncode == 0 else f"FAILED (exit {res.returncode})"
        print(f"      {kind:17s} {status}: {(res.stdout or res.stderr).strip()}")
        failures += res.returncode != 0

    _step(7, "checking that a tampered package is refused")
    tampered = json.loads((out / "packages" / "prescription.json").read_text())
    tampered["record"]["sequence"] += 1
    tampered_path = out / "packages" / "prescription.tampered.json"
    tampered_path.write_text(json.dumps(tampered, indent=2))
    res = _verify_cli([str(tampered_path), *extra])
    refused = res.returncode == 1
    print(f"      tampered package {'refused' if refused else 'NOT refused'}: {res.stderr.strip() or res.stdout.strip()}")
    os.remove(tampered_path)

    if failures or not refused:
        raise ShanchengError("the demo did not verify as expected")
    print(f"demo complete: {len(SAMPLE_RECORDS)} packages verified; files in {out}/")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    return run_demo(Path(args.out))
