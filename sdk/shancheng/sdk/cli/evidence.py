"""``shancheng evidence verify``: offline verification of an evidence package.

Exit status: 0 valid, 1 invalid (one line saying why), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from .. import strict_json
from ..chainproof import GenesisFile
from ..chainproof.genesis import MAX_GENESIS_SIZE
from ..crypto import SM2PublicKey
from ..crypto.pem import MAX_PEM_LEN
from ..errors import InvalidInput, InvalidKey, VerificationError
from ..evidence import EvidencePackage, VerifiedEvidence, verify_package
from ..evidence.crosschain import LAYERS as CROSSCHAIN_LAYERS
from ..evidence.package import MAX_PACKAGE_SIZE
from ..files import read_small_file
from ..merkle import NoteVerifier
from ..records import MAX_RECORD_SIZE, SCHEME_HMAC, SCHEME_SALTED
from ..strict_json import to_hex

EXIT_INVALID = 1
EXIT_USAGE = 2
_MAX_SECRET_SIZE = 2048  # bytes of a salt or an HMAC key given in hex (the key file holds at most 4096 digits)


class UsageError(InvalidInput):
    """Bad command-line usage (exit status 2)."""


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    ev = subparsers.add_parser("evidence", help="verify evidence packages offline")
    sub = ev.add_subparsers(dest="evidence_command", required=True, metavar="COMMAND")
    v = sub.add_parser("verify", help="verify an evidence package (exit 0 valid, 1 invalid, 2 usage error)")
    v.add_argument("package", metavar="PACKAGE", help="evidence package JSON file")
    v.add_argument("--record", metavar="FILE", help="the record (JSON) to check against the commitment")
    v.add_argument("--salt", metavar="HEX", help="the record's salt (salted commitments)")
    v.add_argument("--hmac-key-file", metavar="F", help="the organisation's HMAC key, hex (HMAC commitments)")
    v.add_argument(
        "--checkpoint-key", metavar="VKEY", action="append", help="pin the trusted checkpoint key (repeatable)"
    )
    v.add_argument("--author-key", metavar="PEM", action="append", help="pin the author's public key (repeatable)")
    v.add_argument(
        "--genesis", metavar="FILE",
        help="the chain's genesis.json: the trust root; the package must then prove its anchoring on that chain "
        "(on it, or through a light client of the source chain on it: a cross-chain package)",
    )
    v.add_argument(
        "--genesis-fingerprint", metavar="HEX",
        help="pin the chain identity: refuse a genesis file whose fingerprint differs (compare with the published one)",
    )
    v.add_argument(
        "--unsafe-trust-package-checkpoint-key", action="store_true",
        help="DEBUGGING ONLY: trust the checkpoint key carried by the package itself (anyone can forge such a package)",
    )
    v.add_argument(
        "--light-client", metavar="ADDRESS",
        help="with --genesis of a target chain: pin the address of the source chain's light client on it (as the "
        "target chain's governance publishes it; a cross-chain package needs it)",
    )
    v.add_argument(
        "--unsafe-unpinned-light-client", action="store_true",
        help="DEBUGGING ONLY: take the light client's address from a cross-chain package itself (the pin is what binds "
        "the deployment: a genuine light client deployed with made-up validators would pass)",
    )
    v.add_argument("--json", action="store_true", help="print the result as JSON")
    v.set_defaults(func=cmd_verify)


def _pinned_hex(value: str | None, flag: str, *, size: int) -> bytes | None:
    """A pinned value given as hex (``0x`` optional, either case) of exactly ``size`` bytes; None when not given."""
    if not value:
        return None
    return strict_json.hexbytes("0x" + value.strip().lower().removeprefix("0x"), flag, size=size, error=UsageError)


def _hex_argument(value: str, what: str, *, limit: int) -> bytes:
    """A hex command-line argument (no ``0x``) of 1 to ``limit`` bytes."""
    data = strict_json.hexbytes("0x" + value.strip(), what, limit=limit, error=UsageError)
    if not data:
        raise UsageError(f"{what} must be hex")
    return data


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        raw = read_small_file(args.package, limit=MAX_PACKAGE_SIZE, what="package")
        record = None
        if args.record:
            record = strict_json.loads(read_small_file(args.record, limit=MAX_RECORD_SIZE, what="record file"),
                                 what=f"record file {args.record}", error=UsageError, max_size=MAX_RECORD_SIZE)
        elif args.salt or args.hmac_key_file:
            raise UsageError("--salt and --hmac-key-file need --record")
        salt = _hex_argument(args.salt, "--salt", limit=_MAX_SECRET_SIZE) if args.salt else None
        hmac_key = None
        if args.hmac_key_file:
            hmac_key = _hex_argument(read_small_file(args.hmac_key_file, limit=4096, what="HMAC key file").decode(),
                                     "HMAC key", limit=_MAX_SECRET_SIZE)
        checkpoint_keys = [NoteVerifier.from_vkey(v) for v in args.checkpoint_key] if args.checkpoint_key else None
        authors = (
            [SM2PublicKey.from_pem(read_small_file(p, limit=MAX_PEM_LEN, what="author key")) for p in args.author_key]
            if args.author_key
            else None
        )
        genesis = None
        if args.genesis:
            genesis = GenesisFile.load(read_small_file(args.genesis, limit=MAX_GENESIS_SIZE, what="genesis file"))
        if genesis is None and (args.genesis_fingerprint or args.light_client):
            raise UsageError("--genesis-fingerprint and --light-client need --genesis FILE (the light client's: the "
                             "target chain's)")
        fingerprint = _pinned_hex(args.genesis_fingerprint, "--genesis-fingerprint", size=32)
        light_client = _pinned_hex(args.light_client, "--light-client", size=20)
        if genesis is None and not checkpoint_keys and not args.unsafe_trust_package_checkpoint_key:
            raise UsageError(
                "no trust root: pass --genesis FILE (a chain-anchored package) or --checkpoint-key VKEY (pinned log key)"
            )
    except (InvalidInput, InvalidKey) as exc:
        print(f"usage error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        pkg = EvidencePackage.loads(raw)
        scheme = pkg.record.statement.commitment.scheme
        if record is not None and scheme == SCHEME_SALTED and salt is None:
            raise UsageError("this record has a salted commitment: pass --salt")
        if record is not None and scheme == SCHEME_HMAC and hmac_key is None:
            raise UsageError("this record has an HMAC commitment: pass --hmac-key-file")
        result = verify_package(
            pkg,
            record=record,
            salt=salt,
            hmac_key=hmac_key,
            checkpoint_keys=checkpoint_keys,
            authors=authors,
            genesis=genesis,
            genesis_fingerprint=fingerprint,
            unsafe_trust_embedded_checkpoint_key=args.unsafe_trust_package_checkpoint_key,
            light_client=light_client,
            unsafe_unpinned_light_client=args.unsafe_unpinned_light_client,
        )
    except UsageError as exc:
        print(f"usage error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (VerificationError, InvalidInput) as exc:
        if args.json:
            print(json.dumps({"valid": False, "failed_check": exc.check or "package", "reason": str(exc)}))
        else:
            print(f"INVALID: {exc}", file=sys.stderr)
        return EXIT_INVALID
    if args.json:
        print(json.dumps(_result_json(result), ensure_ascii=False))
    else:
        print(result.summary())
    return 0


def _result_json(result: VerifiedEvidence) -> dict[str, Any]:
    anchor, cross = result.anchor, result.crosschain
    return {
        "valid": True,
        "unsafe": result.unsafe,
        "trust_root": result.trust_root,
        "summary": result.summary(),
        "author_pinned": result.author_pinned,
        "record_checked": result.record_checked,
        "not_checked": list(result.not_checked),
        "anchor": None
        if anchor is None
        else {
            "chain_identity": to_hex(anchor.chain_identity),
            "organisation": {"id": anchor.org.org_id, "name": anchor.org.name},
            "author": None if anchor.author is None else {"staff": to_hex(anchor.author.address)},
            "source_id": to_hex(anchor.source_id),
            "sequence": anchor.sequence,
            "transaction_hash": to_hex(anchor.transaction_hash),
            "block_number": anchor.receipt.block_number,
            "block_hash": to_hex(anchor.receipt.block_hash),
            "timestamp": anchor.receipt.timestamp,
            "transaction_index": anchor.receipt.transaction_index,
            "signers": anchor.signers,
            "validators": anchor.validators,
        },
        "crosschain": None
        if cross is None
        else {
            "layers": list(CROSSCHAIN_LAYERS),
            "target_chain_identity": to_hex(cross.target_identity),
            "target_block_number": cross.target_height,
            "target_block_hash": to_hex(cross.target_block_hash),
            "light_client": to_hex(cross.light_client),
            "source_chain_identity": to_hex(cross.source_identity),
            "source_block_number": cross.source_height,
            "source_block_hash": to_hex(cross.source_block_hash),
            "organisation": {"id": cross.batch.org_id},
            "source_id": to_hex(cross.batch.source_id),
            "sequence": cross.batch.sequence,
            "transaction_hash": to_hex(cross.batch.transaction_hash),
        },
    }
