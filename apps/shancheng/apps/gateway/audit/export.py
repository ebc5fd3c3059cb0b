"""Offline verification of an audit export (the SDK and the chain's genesis file only), and the auditor's command
``shancheng gateway audit verify EXPORT --genesis FILE`` (also ``python -m shancheng.apps.gateway.audit``)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shancheng.sdk import strict_json
from shancheng.sdk.chainproof import GenesisFile
from shancheng.sdk.chainproof.genesis import MAX_GENESIS_SIZE
from shancheng.sdk.errors import InvalidInput, ShanchengError, VerificationError
from shancheng.sdk.evidence import EvidencePackage, VerifiedEvidence, verify_package
from shancheng.sdk.evidence.package import MAX_PACKAGE_SIZE
from shancheng.sdk.files import read_small_file

from .entries import AuditChainBroken, AuditEntry, walk
from .heads import HEAD_KIND, head_record, heads_origin
from .log import EXPORT_FORMAT

__all__ = ["ExportVerified", "add_cli", "main", "verify_export"]

MAX_LINE = MAX_PACKAGE_SIZE + 4096  # an anchor line carries an evidence package
MAX_EXPORT_LINES = 10_000_000


@dataclass(frozen=True)
class ExportVerified:
    """What :func:`verify_export` established: the entries ``first_seq..last_seq`` are linked, and those up to
    ``anchored_seq`` are proven by heads of the organisation's audit-heads log on the chain of the genesis file."""

    org: str
    entries: int
    first_seq: int | None
    last_seq: int | None
    anchored_seq: int | None
    anchors: int
    anchor_block: int | None
    anchor_summary: str | None
    anchor_time: int | None = None  # the block time (unix seconds) of the newest head's anchor

    @property
    def unanchored(self) -> int:
        if self.last_seq is None:
            return 0
        return self.last_seq - (self.anchored_seq if self.anchored_seq is not None else (self.first_seq or 1) - 1)

    def summary(self) -> str:
        span = f"seq {self.first_seq}..{self.last_seq}" if self.entries else "no entries"
        text = f"OK {self.entries} entries of {self.org} ({span})"
        if self.anchored_seq is not None:
            text += f"; anchored through seq {self.anchored_seq} in block {self.anchor_block} ({self.anchors} anchor(s))"
        if self.unanchored:
            text += f"; {self.unanchored} entries after the last anchor are linked but not anchored yet"
        return text


def _parse_line(text: str, number: int) -> dict[str, Any]:
    obj = strict_json.loads(text, what=f"line {number}", error=InvalidInput, max_size=MAX_LINE)
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise InvalidInput(f"line {number}: expected an object with a type")
    return obj


def _read(lines: Iterable[str]) -> tuple[dict[str, Any], list[AuditEntry], list[dict[str, Any]], dict[str, Any] | None]:
    header: dict[str, Any] | None = None
    entries: list[AuditEntry] = []
    anchors: list[dict[str, Any]] = []
    end: dict[str, Any] | None = None
    for number, raw in enumerate(lines, 1):
        if number > MAX_EXPORT_LINES:
            raise InvalidInput(f"an audit export has at most {MAX_EXPORT_LINES} lines")
        text = raw.strip()
        if not text:
            continue
        obj = _parse_line(text, number)
        if end is not None:
            raise AuditChainBroken(f"line {number} follows the end line", sequence=0, kind="malformed")
        kind = obj["type"]
        if header is None:
            if kind != "header" or obj.get("format") != EXPORT_FORMAT:
                raise InvalidInput(f"line {number}: an audit export starts with a {EXPORT_FORMAT} header")
            strict_json.fields(obj, "header", required={"type", "format", "org", "first_seq", "prev_hash",
                                                        "exported_ms"}, error=InvalidInput)
            header = obj
        elif kind == "entry":
            entries.append(AuditEntry.from_json(obj, f"line {number}"))
        elif kind == "anchor":
            strict_json.fields(obj, f"line {number}", required={"type", "n", "seq", "hash", "record", "salt",
                                                                "package"}, error=InvalidInput)
            anchors.append(obj)
        elif kind == "end":
            end = obj
        else:
            raise InvalidInput(f"line {number}: unknown line type {kind!r}")
    if header is None:
        raise InvalidInput("the audit export is empty")
    if not isinstance(header["org"], str):
        raise InvalidInput("header.org: expected a string")
    return header, entries, anchors, end


def _verified_head(obj: dict[str, Any], org: str, genesis: GenesisFile) -> tuple[int, int, str, VerifiedEvidence]:
    """An anchor line's head ``(n, seq, hash)`` once its package proves it is record ``n`` of ``org``'s audit-heads
    log, anchored by ``org`` on the chain of ``genesis``."""
    n = strict_json.uint(obj["n"], "anchor.n", error=InvalidInput)
    seq = strict_json.uint(obj["seq"], "anchor.seq", error=InvalidInput)
    head_hash = obj["hash"]
    if not isinstance(head_hash, str):
        raise InvalidInput("anchor.hash: expected a string")
    record = obj["record"]
    if record != head_record(org, n, seq, head_hash):
        raise AuditChainBroken(f"the anchor of sequence {seq} carries another record", sequence=seq, kind="anchor")
    salt = strict_json.hexbytes("0x" + str(obj["salt"]), "anchor.salt", error=InvalidInput, limit=255)
    try:
        package = EvidencePackage.loads(json.dumps(obj["package"]))
        result = verify_package(package, record=record, salt=salt, genesis=genesis)
    except (VerificationError, InvalidInput) as exc:
        raise AuditChainBroken(f"the anchor of sequence {seq} does not verify: {exc}", sequence=seq,
                               kind="anchor") from exc
    statement = package.record.statement
    if statement.kind != HEAD_KIND or result.checkpoint.origin != heads_origin(org):
        raise AuditChainBroken(f"the anchor of sequence {seq} is a {statement.kind!r} record of the log "
                               f"{result.checkpoint.origin!r}, not of {org}'s audit-heads log {heads_origin(org)!r}",
                               sequence=seq, kind="anchor")
    if statement.sequence != n:
        raise AuditChainBroken(f"the anchor of sequence {seq} is record {statement.sequence} of the audit-heads log, "
                               f"not head {n}", sequence=seq, kind="anchor")
    if result.anchor is None or result.anchor.org.name != org:
        raise AuditChainBroken(f"the anchor of sequence {seq} was not anchored by {org!r}", sequence=seq,
                               kind="anchor")
    return n, seq, head_hash, result


def verify_export(lines: Iterable[str], *, genesis: GenesisFile, max_anchor_age: float | None = None,
                  now: float | None = None) -> ExportVerified:
    """Verify an audit export offline: the entries are linked from the header's previous hash; every anchor is a
    head of the organisation's own audit-heads log, proven on the chain of ``genesis`` (record, salt and evidence
    package), with consecutive head numbers from the last head before the range, strictly increasing sequences,
    and the hash of the export's entry at its sequence (another hash: two audit chains, ``equivocation``); no head
    lies past the last entry (a cut tail). ``max_anchor_age`` (seconds): the newest head must have been anchored
    no longer ago than that (before ``now``), so withholding the recent heads shows. Raises
    :class:`AuditChainBroken` (or another VerificationError / InvalidInput) otherwise."""
    header, entries, anchors, end = _read(lines)
    org = str(header["org"])
    first = strict_json.uint(header["first_seq"], "header.first_seq", error=InvalidInput)
    by_seq = {e.seq: e for e in entries}
    by_hash = {e.hash: e.seq for e in entries}
    count, last, _ = walk(entries, first_seq=first, prev=str(header["prev_hash"]), later_seq=by_hash.get,
                          elsewhere=by_seq.__contains__)
    if end is None or end.get("entries") != count:
        raise AuditChainBroken("the export was cut short (its end line is missing or counts other entries)",
                               sequence=last + 1, kind="truncated")
    anchored: int | None = None
    newest: VerifiedEvidence | None = None
    previous: tuple[int, int] | None = None  # (n, seq) of the head before
    for index, obj in enumerate(anchors):
        n, seq, head_hash, result = _verified_head(obj, org, genesis)
        if previous is None and n > 0 and seq >= first:
            raise AuditChainBroken(f"the export leaves out head {n - 1} (its heads must start from the last one "
                                   f"before sequence {first})", sequence=seq, kind="anchor")
        if previous is not None and (n != previous[0] + 1 or seq <= previous[1]):
            raise AuditChainBroken(f"head {n} (sequence {seq}) does not follow head {previous[0]} (sequence "
                                   f"{previous[1]}): heads were left out or reordered", sequence=seq, kind="anchor")
        if seq > last:
            raise AuditChainBroken(f"sequence {seq} was anchored but the export ends at {last}: entries from "
                                   f"{last + 1} were removed", sequence=last + 1, kind="truncated")
        if seq < first:
            if index > 0:
                raise AuditChainBroken(f"head {n} lies before the export's first entry", sequence=seq, kind="anchor")
            if seq == first - 1 and head_hash != header["prev_hash"]:
                raise AuditChainBroken(f"head {n} anchors entry {seq} with another hash than the export's start",
                                       sequence=first, kind="equivocation")
        else:
            entry = by_seq.get(seq)
            if entry is None or entry.hash != head_hash:
                raise AuditChainBroken(f"entry {seq} is not the one anchored on chain as head {n}: the gateway keeps "
                                       "another audit chain, or rewrote this one", sequence=seq, kind="equivocation")
            anchored = seq
        previous, newest = (n, seq), result
    if max_anchor_age is not None:
        at = (time.time() if now is None else now)
        anchor_time = newest.anchor.receipt.timestamp if newest is not None and newest.anchor is not None else None
        if anchor_time is None or at - anchor_time > max_anchor_age:
            age = "no head is anchored" if anchor_time is None else f"the newest head was anchored {at - anchor_time:.0f} s ago"
            raise AuditChainBroken(f"{age}, more than the {max_anchor_age:.0f} s allowed: recent heads may be "
                                   "withheld", sequence=last + 1, kind="stale")
    block = newest.anchor.receipt.block_number if newest is not None and newest.anchor is not None else None
    return ExportVerified(
        org=org, entries=count, first_seq=first if count else None, last_seq=last if count else None,
        anchored_seq=anchored, anchors=len(anchors), anchor_block=block if anchored is not None else None,
        anchor_summary=newest.summary() if newest is not None else None,
        anchor_time=newest.anchor.receipt.timestamp if newest is not None and newest.anchor is not None else None)


# -- the auditor's command --------------------------------------------------------------------------------

def add_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``audit verify EXPORT --genesis FILE`` to a command's sub-commands (``shancheng gateway audit ...``)."""
    audit = subparsers.add_parser("audit", help="the gateway's audit log")
    sub = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    v = sub.add_parser("verify", help="verify an audit export offline (exit 0 valid and anchored, 1 invalid)")
    v.add_argument("export", metavar="EXPORT", help="the JSON lines of GET /api/v1/audit/export")
    v.add_argument("--genesis", metavar="FILE", required=True, help="the chain's genesis.json: the trust root")
    v.add_argument("--max-anchor-age", metavar="SECONDS", type=float, default=None,
                   help="refuse the export unless its newest head was anchored at most this long ago (the gateway's "
                        "anchoring interval plus slack): withheld recent heads show")
    v.add_argument("--unsafe-allow-unanchored", action="store_true",
                   help="accept an export none of whose entries is covered by an anchor (proves nothing on chain)")
    v.set_defaults(func=cmd_verify)


def main(argv: list[str] | None = None) -> int:
    """``python -m shancheng.apps.gateway.audit verify EXPORT --genesis FILE`` (the same as ``shancheng gateway audit
    verify``), for an auditor who installed the apps without the gateway's command."""
    parser = argparse.ArgumentParser(prog="python -m shancheng.apps.gateway.audit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_cli(sub)
    args = parser.parse_args(["audit", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except ShanchengError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def cmd_verify(args: argparse.Namespace) -> int:
    genesis = GenesisFile.load(read_small_file(args.genesis, limit=MAX_GENESIS_SIZE, what="genesis file"))
    if args.max_anchor_age is not None and not 0 < args.max_anchor_age <= 366 * 86400:
        raise InvalidInput("--max-anchor-age is a number of seconds between 0 and a year")
    path = Path(args.export)
    try:
        with path.open(encoding="utf-8") as fh:
            result = verify_export(_bounded_lines(fh), genesis=genesis, max_anchor_age=args.max_anchor_age)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    except (VerificationError, InvalidInput) as exc:
        print(f"INVALID: {exc}", file=sys.stderr)
        return 1
    if result.anchored_seq is None and not args.unsafe_allow_unanchored:
        print(f"NOT ANCHORED: {result.summary()}; no entry is covered by an anchor", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def _bounded_lines(fh: Any) -> Iterator[str]:
    while True:
        line = fh.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) > MAX_LINE:
            raise InvalidInput(f"a line of the export is longer than {MAX_LINE} characters")
        yield line
