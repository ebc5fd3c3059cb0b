"""``shancheng keys``: create and inspect SM2 key files.

A key file is PEM: the PKCS#8 private key (encrypted with scrypt + SM4-CBC
unless ``--unsafe-no-password``), followed by the public key so that
``keys show`` works without the password.  OpenSSL 3 reads the file as is
(``openssl pkey -in FILE``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..crypto import SM2PrivateKey, SM2PublicKey
from ..crypto.pem import MAX_PEM_LEN, pem_blocks
from ..errors import InvalidInput, InvalidKey
from ..files import MIN_PASSWORD_LEN, read_password, read_small_file, write_private_file
from ..strict_json import to_hex

log = logging.getLogger("shancheng.keys")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = subparsers.add_parser("keys", help="create and inspect SM2 key files")
    sub = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")

    new = sub.add_parser("new", help="generate an SM2 key and write it encrypted to a file")
    new.add_argument(
        "--out", required=True, metavar="FILE", help="key file to create (mode 0600; a missing folder is made 0700)"
    )
    new.add_argument("--password-file", metavar="F", help="file whose first line is the password")
    new.add_argument(
        "--force", action="store_true", help="replace FILE if it exists (a new file is renamed into place; a symlink "
        "at FILE is replaced, never followed)"
    )
    new.add_argument(
        "--unsafe-no-password", action="store_true", help="write the private key unencrypted (development only)"
    )
    new.set_defaults(func=cmd_new)

    show = sub.add_parser("show", help="print a key file's public key and SM3 address")
    show.add_argument("file", metavar="FILE")
    show.add_argument("--password-file", metavar="F", help="also decrypt the private key and check it matches")
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_show)


def write_key_file(
    path: Path, key: SM2PrivateKey, password: bytes | None, *, force: bool = False, unsafe_unencrypted: bool = False
) -> None:
    """Write ``key`` as an SM2 key file: mode 0600, atomically, never through a symlink (see write_private_file).

    The private key is encrypted with ``password`` (at least 8 bytes); a plaintext key is written only when
    ``password`` is None and ``unsafe_unencrypted`` is set.
    """
    if password is None:
        if not unsafe_unencrypted:
            raise InvalidInput(f"refusing to write {path} unencrypted: a key password is needed")
        private = key.to_pem_unsafe_unencrypted()
    elif unsafe_unencrypted:
        raise InvalidInput("unsafe_unencrypted and a password exclude each other")
    else:
        private = key.to_pem(password)
    write_private_file(path, private + key.public_key().to_pem(), force=force)


def load_key_file(path: str, password: bytes | None) -> SM2PrivateKey:
    return SM2PrivateKey.from_pem(read_small_file(path, limit=MAX_PEM_LEN, what="key file"), password)


def cmd_new(args: argparse.Namespace) -> int:
    if args.unsafe_no_password:
        log.warning("writing an UNENCRYPTED private key to %s (development only)", args.out)
        password = None
    else:
        password = read_password(args.password_file, confirm=True)
        assert password is not None
        if len(password) < MIN_PASSWORD_LEN:
            raise InvalidKey(f"the key password must be at least {MIN_PASSWORD_LEN} bytes")
    key = SM2PrivateKey.generate()
    write_key_file(Path(args.out), key, password, force=args.force, unsafe_unencrypted=args.unsafe_no_password)
    pub = key.public_key()
    print(f"wrote {args.out} ({'encrypted, scrypt + SM4-CBC' if password else 'UNENCRYPTED'})")
    print(f"public key  {pub.to_bytes().hex()}")
    print(f"sm3 address 0x{pub.sm3_address().hex()}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    data = read_small_file(args.file, limit=MAX_PEM_LEN, what="key file")
    blocks = dict(pem_blocks(data))
    encrypted = "ENCRYPTED PRIVATE KEY" in blocks
    if not encrypted and "PRIVATE KEY" not in blocks and "PUBLIC KEY" not in blocks:
        raise InvalidKey(f"{args.file} holds no SM2 private or public key PEM block")
    pub = SM2PublicKey.from_der(blocks["PUBLIC KEY"]) if "PUBLIC KEY" in blocks else None
    checked = False
    if args.password_file or "PRIVATE KEY" in blocks:
        password = read_password(args.password_file, required=False) if encrypted else None
        key = SM2PrivateKey.from_pem(data, password)
        if pub is not None and key.public_key() != pub:
            raise InvalidKey(f"{args.file}: the public key block does not match the private key")
        pub, checked = key.public_key(), True
    elif pub is None:
        raise InvalidKey(f"{args.file} is encrypted and has no public key block; pass --password-file")
    info = {
        "file": args.file,
        "kind": "private" if encrypted or "PRIVATE KEY" in blocks else "public",
        "encrypted": encrypted,
        "private_key_checked": checked,
        "public_key": pub.to_bytes().hex(),
        "sm3_address": to_hex(pub.sm3_address()),
        "public_key_pem": pub.to_pem().decode(),
    }
    if args.json:
        json.dump(info, sys.stdout, indent=2)
        print()
    else:
        print(f"file        {args.file}")
        print(f"kind        SM2 {info['kind']} key" + (" (encrypted)" if encrypted else ""))
        print(f"public key  {info['public_key']}")
        print(f"sm3 address {info['sm3_address']}")
        print(info["public_key_pem"], end="")
    return 0
