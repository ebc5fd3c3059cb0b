"""``shancheng pki``: the consortium's GM TLS PKI (docs/gm-tls.md): a CA, certificates, their register and the CRL.

    shancheng pki init-ca --dir pki --org "Shancheng district" --password-file ca.password
    shancheng pki issue   --dir pki --role node --name node0 --dns node0 --ip 10.0.0.5 --password-file ca.password
    shancheng pki list    --dir pki
    shancheng pki revoke  --dir pki 5A3F... --password-file ca.password
    shancheng pki crl     --dir pki --password-file ca.password

The CA folder holds ``ca.crt`` (the trust anchor every endpoint is given), ``ca.key`` (encrypted: scrypt + SM4, mode
0600), ``register.json`` (every certificate issued: serial, name, role, usage, expiry, files, revocation) and
``ca.crl`` (the signed revocation list the GM TLS listeners reload when it changes).  ``issue`` writes the TLCP
double certificate (``NAME-sign.crt/.key`` and ``NAME-enc.crt/.key``; RFC 8998 uses the sign pair) into
``--out`` (default ``DIR/issued``), keys encrypted with ``--key-password-file`` (default: the CA's password).
``revoke`` marks serials revoked and writes a new CRL at once; ``crl`` re-signs it (do it before the list's next
update, ``--days``, or the listeners refuse every peer).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

from ..errors import InvalidInput
from ..files import MIN_PASSWORD_LEN, make_private_folder, read_password, read_small_file, write_private_file
from ..gmtls import ROLES, ConsortiumCA, load_revocations

__all__ = ["register"]

CA_CERT, CA_KEY, REGISTER, CRL = "ca.crt", "ca.key", "register.json", "ca.crl"
MAX_REGISTER = 16 * 1024 * 1024
MAX_SERIALS = 1000


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    pki = subparsers.add_parser("pki", help="the consortium's GM TLS certificates: CA, issue, list, revoke, CRL")
    sub = pki.add_subparsers(dest="pki_command", required=True, metavar="COMMAND")

    def command(name: str, help: str, func: Any, *, password: bool = True) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(name, help=help)
        parser.add_argument("--dir", required=True, type=Path, metavar="DIR", help="the CA folder")
        if password:
            parser.add_argument("--password-file", metavar="F", help="the CA key's password (first line)")
        parser.set_defaults(func=func)
        return parser

    init = command("init-ca", "make the consortium CA, an empty register and CRL", cmd_init_ca)
    init.add_argument("--org", required=True, help="the consortium's organisation name (O=)")
    init.add_argument("--name", default="Shancheng consortium CA", help="the CA's common name (CN=)")
    init.add_argument("--days", type=int, default=3650)
    issue = command("issue", "issue a sign + enc certificate pair for a gateway, node or member system", cmd_issue)
    issue.add_argument("--role", required=True, choices=ROLES)
    issue.add_argument("--name", required=True, help="the subject's common name (CN=)")
    issue.add_argument("--dns", action="append", default=[], metavar="NAME", help="a DNS name (repeatable)")
    issue.add_argument("--ip", action="append", default=[], metavar="ADDR", help="an IP address (repeatable)")
    issue.add_argument("--days", type=int, default=825)
    issue.add_argument("--out", type=Path, metavar="DIR", help="where to write the files (default DIR/issued)")
    issue.add_argument("--key-password-file", metavar="F", help="the new keys' password (default: the CA's)")
    listing = command("list", "list the certificates issued, with their state", cmd_list, password=False)
    listing.add_argument("--json", action="store_true")
    revoke = command("revoke", "revoke certificates by serial (hex) and write a new CRL", cmd_revoke)
    revoke.add_argument("serials", nargs="+", metavar="SERIAL")
    revoke.add_argument("--days", type=int, default=7, help="the CRL's validity (default 7 days)")
    crl = command("crl", "sign a fresh CRL from the register", cmd_crl)
    crl.add_argument("--days", type=int, default=7, help="the CRL's validity (default 7 days)")


def _ca(folder: Path, password_file: str | None) -> ConsortiumCA:
    if not (folder / CA_CERT).exists():
        raise InvalidInput(f"{folder} holds no CA ({CA_CERT}); run `shancheng pki init-ca --dir {folder}` first")
    return ConsortiumCA.from_files(folder / CA_CERT, folder / CA_KEY, read_password(password_file))


def _load_register(folder: Path) -> dict[str, Any]:
    path = folder / REGISTER
    if not path.exists():
        raise InvalidInput(f"{folder} holds no certificate register ({REGISTER}); is it a CA folder?")
    try:
        data = json.loads(read_small_file(str(path), limit=MAX_REGISTER, what="register"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"{path} is not a certificate register: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("certificates"), list) \
            or type(data.get("crl_number")) is not int:
        raise InvalidInput(f"{path} is not a certificate register")
    return data


def _save_register(folder: Path, data: dict[str, Any]) -> None:
    write_private_file(folder / REGISTER, json.dumps(data, indent=2).encode() + b"\n", force=True)


def _write_crl(folder: Path, ca: ConsortiumCA, data: dict[str, Any], days: int) -> int:
    """Sign the register's revocations as the next CRL, write it (0644) and the register; returns the count."""
    revoked = [(int(c["serial"], 16), dt.datetime.fromisoformat(c["revoked_at"]))
               for c in data["certificates"] if c.get("revoked_at")]
    data["crl_number"] += 1
    pem = ca.revocation_list(revoked, number=data["crl_number"], days=days)
    load_revocations(pem)
    write_private_file(folder / CRL, pem, force=True)
    os.chmod(folder / CRL, 0o644)  # public: every listener reads it
    _save_register(folder, data)
    return len(revoked)


def cmd_init_ca(args: argparse.Namespace) -> int:
    folder: Path = args.dir
    if (folder / CA_CERT).exists() or (folder / CA_KEY).exists():
        raise InvalidInput(f"{folder} already holds a CA; choose another --dir")
    password = read_password(args.password_file, confirm=True)
    assert password is not None
    if len(password) < MIN_PASSWORD_LEN:
        raise InvalidInput(f"the CA key's password must be at least {MIN_PASSWORD_LEN} bytes")
    ca = ConsortiumCA.create(organisation=args.org, name=args.name, days=args.days)
    make_private_folder(folder)
    ca.certified.write(folder / CA_CERT, folder / CA_KEY, password)
    data: dict[str, Any] = {"version": 1, "ca_subject": ca.certified.subject, "crl_number": 0, "certificates": []}
    _write_crl(folder, ca, data, 7)
    print(f"CA {ca.certified.subject} in {folder}: {CA_CERT} (give it to every endpoint), {CA_KEY} (keep offline), "
          f"{REGISTER}, {CRL}")
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    folder: Path = args.dir
    data = _load_register(folder)
    ca = _ca(folder, args.password_file)
    key_password = read_password(args.key_password_file) if args.key_password_file else read_password(
        args.password_file)
    assert key_password is not None
    out: Path = args.out or folder / "issued"
    files = {usage: (out / f"{args.name}-{usage}.crt", out / f"{args.name}-{usage}.key") for usage in ("sign", "enc")}
    for cert, key in files.values():
        for path in (cert, key):
            if os.path.lexists(path):
                raise InvalidInput(f"{path} already exists; revoke the old certificate and choose another --out")
    pair = ca.issue_pair(args.name, role=args.role, dns_names=args.dns, ip_addresses=args.ip, days=args.days)
    make_private_folder(out)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for usage, certified in zip(("sign", "enc"), pair, strict=True):
        cert, key = files[usage]
        certified.write(cert, key, key_password)
        data["certificates"].append({
            "serial": f"{certified.serial:X}", "subject": certified.subject, "name": args.name, "role": args.role,
            "usage": usage, "issued_at": now, "not_after": certified.not_after.isoformat(timespec="seconds"),
            "certificate": str(cert), "revoked_at": None,
        })
        print(f"{usage:4s} {certified.serial:X}  {cert}  {key}")
    _save_register(folder, data)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    data = _load_register(args.dir)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for c in data["certificates"]:
        state = "revoked" if c.get("revoked_at") else (
            "expired" if dt.datetime.fromisoformat(c["not_after"]) < now else "valid")
        rows.append({**c, "state": state})
    if args.json:
        print(json.dumps({"crl_number": data["crl_number"], "certificates": rows}, indent=2))
        return 0
    for r in rows:
        print(f"{r['serial']:<34} {r['role']:<8} {r['usage']:<5} {r['state']:<8} {r['not_after'][:10]}  {r['subject']}")
    return 0


def _serial(text: str) -> str:
    value = text.strip().removeprefix("0x").removeprefix("0X").replace(":", "")
    try:
        number = int(value, 16)
    except ValueError:
        raise InvalidInput(f"{text[:60]!r} is not a serial number in hex (as `pki list` shows it)") from None
    return f"{number:X}"


def cmd_revoke(args: argparse.Namespace) -> int:
    folder: Path = args.dir
    if len(args.serials) > MAX_SERIALS:
        raise InvalidInput(f"at most {MAX_SERIALS} serials at a time")
    data = _load_register(folder)
    by_serial = {c["serial"]: c for c in data["certificates"]}
    wanted = [_serial(s) for s in args.serials]
    unknown = [s for s in wanted if s not in by_serial]
    if unknown:
        raise InvalidInput(f"not in the register: {', '.join(unknown[:5])}")
    ca = _ca(folder, args.password_file)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    for serial in wanted:
        if not by_serial[serial].get("revoked_at"):
            by_serial[serial]["revoked_at"] = now
    count = _write_crl(folder, ca, data, args.days)
    print(f"revoked {', '.join(wanted)}; {folder / CRL} lists {count} (CRL number {data['crl_number']})")
    return 0


def cmd_crl(args: argparse.Namespace) -> int:
    folder: Path = args.dir
    data = _load_register(folder)
    count = _write_crl(folder, _ca(folder, args.password_file), data, args.days)
    print(f"{folder / CRL}: {count} revoked, CRL number {data['crl_number']}, valid {args.days} days")
    return 0
