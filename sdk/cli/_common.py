"""Helpers shared by the SDK's CLI commands."""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

from ..errors import InvalidInput

MAX_PASSWORD_FILE = 4096
MIN_PASSWORD_LEN = 8


def read_small_file(path: str, *, limit: int, what: str) -> bytes:
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > limit:
            raise InvalidInput(f"{what} {path} is larger than {limit} bytes")
        return p.read_bytes()
    except FileNotFoundError as exc:
        raise InvalidInput(f"{what} {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise InvalidInput(f"{what} {path} is a directory") from exc
    except PermissionError as exc:
        raise InvalidInput(f"{what} {path} is not readable") from exc


def read_password(password_file: str | None, *, confirm: bool = False, required: bool = True) -> bytes | None:
    """From --password-file (first line), $SHANCHENG_KEY_PASSWORD, or an interactive prompt."""
    if password_file:
        raw = read_small_file(password_file, limit=MAX_PASSWORD_FILE, what="password file")
        password = raw.split(b"\n", 1)[0].rstrip(b"\r")
    elif os.environ.get("SHANCHENG_KEY_PASSWORD"):
        password = os.environ["SHANCHENG_KEY_PASSWORD"].encode()
    elif sys.stdin.isatty():
        password = getpass.getpass("Key password: ").encode()
        if confirm and getpass.getpass("Repeat password: ").encode() != password:
            raise InvalidInput("the passwords do not match")
    elif required:
        raise InvalidInput("a key password is needed: pass --password-file F or set SHANCHENG_KEY_PASSWORD")
    else:
        return None
    if not password:
        raise InvalidInput("the key password is empty")
    return password


def write_private_file(path: Path, data: bytes, *, force: bool = False) -> None:
    """Create ``path`` with mode 0600 (never world-readable, even briefly)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if force else os.O_EXCL)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError as exc:
        raise InvalidInput(f"{path} already exists; refusing to overwrite it (use --force)") from exc
    except FileNotFoundError as exc:
        raise InvalidInput(f"the folder of {path} does not exist") from exc
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
