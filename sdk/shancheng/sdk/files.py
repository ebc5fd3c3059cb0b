"""Helpers shared by the SDK's CLI commands."""

from __future__ import annotations

import contextlib
import errno
import getpass
import os
import secrets
import sys
from pathlib import Path

from .crypto.pem import MIN_PASSWORD_LEN
from .errors import InvalidInput

__all__ = ["MAX_PASSWORD_FILE", "MIN_PASSWORD_LEN", "make_private_folder", "read_password", "read_small_file",
           "write_private_file"]

MAX_PASSWORD_FILE = 4096


def read_small_file(path: str, *, limit: int, what: str) -> bytes:
    """At most ``limit`` bytes, counted as read: a pipe or device (``st_size`` 0) or a growing file cannot
    make this read more."""
    try:
        with Path(path).open("rb") as f:
            data = f.read(limit + 1)
    except FileNotFoundError as exc:
        raise InvalidInput(f"{what} {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise InvalidInput(f"{what} {path} is a directory") from exc
    except PermissionError as exc:
        raise InvalidInput(f"{what} {path} is not readable") from exc
    if len(data) > limit:
        raise InvalidInput(f"{what} {path} is larger than {limit} bytes")
    return data


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


def make_private_folder(folder: Path) -> None:
    """Create ``folder`` (and any missing parents) with mode 0700; an existing folder is left as it is."""
    missing = []
    d = Path(folder)
    while not os.path.lexists(d):
        missing.append(d)
        if d.parent == d:
            break
        d = d.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise InvalidInput(f"cannot create the folder {d}: {exc.strerror or exc}") from exc
        else:
            os.chmod(d, 0o700)  # exactly 0700 whatever the umask
    if not Path(folder).is_dir():
        raise InvalidInput(f"{folder} is not a folder")


def write_private_file(path: Path, data: bytes, *, force: bool = False) -> None:
    """Write ``path`` with mode 0600, atomically, never following a symlink.

    The data goes to a fresh temporary file in the same folder (``O_CREAT | O_EXCL | O_NOFOLLOW``, mode 0600,
    fsynced), which then takes the place of ``path``: with ``force`` by ``os.replace`` (a symlink at ``path`` is
    replaced, its target is never written), without it by a hard link that fails if anything exists at ``path``
    (a dangling symlink too).  A missing folder is created with mode 0700.
    """
    path = Path(path)
    if not force and os.path.lexists(path):
        raise InvalidInput(f"{path} already exists; refusing to overwrite it (use --force)")
    if os.path.isdir(path) and not os.path.islink(path):
        raise InvalidInput(f"{path} is a folder; refusing to overwrite it")
    folder = path.parent
    make_private_folder(folder)
    tmp = folder / f".{path.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from exc
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o600)  # exactly 0600 whatever the umask
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if force:
            os.replace(tmp, path)
        else:
            _link_no_clobber(tmp, path)
    except FileExistsError as exc:
        raise InvalidInput(f"{path} already exists; refusing to overwrite it (use --force)") from exc
    except OSError as exc:
        raise InvalidInput(f"cannot write {path}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_folder(folder)


def _link_no_clobber(tmp: Path, path: Path) -> None:
    """Put ``tmp`` at ``path`` only if nothing is there (atomic where hard links work)."""
    try:
        os.link(tmp, path, follow_symlinks=False)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV):
            raise
        if os.path.lexists(path):  # a file system without hard links: check, then rename
            raise FileExistsError(errno.EEXIST, "File exists", str(path)) from exc
        os.replace(tmp, path)


def _fsync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
