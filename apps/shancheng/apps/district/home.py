"""A district's home folder: its layout, the state of what was set up (``district.json``, 0600) and the lock held
while a district runs on it.

Layout of the home::

    district.json           what was set up: chain, passwords of the key files, tokens, stations, the story (0600)
    district.lock           held while a district runs on this home
    node/ or network/       the chain (solo node home, or the 4-validator network of ``network init``)
    gateways/<org>/         gateway.toml, keys/ (encrypted, 0600), data/ (SQLite, staff keys, station keys)
    logs/                   node*.log, gateway-<org>.log

>>> import tempfile, pathlib
>>> home = DistrictHome(pathlib.Path(tempfile.mkdtemp()) / "d", validators=1)
>>> home.load()
>>> sorted(home.state)
['gm_tls', 'orgs', 'stations', 'validators', 'version']
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.files import make_private_folder, write_private_file

__all__ = ["STATE_VERSION", "DistrictHome"]

STATE_VERSION = 1


class DistrictHome:
    """The folder ``root`` of a district of ``validators`` validator(s), whose nodes talk over GM TLS when
    ``gm_tls``; :attr:`state` is ``district.json``'s content once :meth:`load` has run."""

    def __init__(self, root: Path, *, validators: int, gm_tls: bool = False) -> None:
        self.root = root.resolve()
        self.validators = validators
        self.gm_tls = gm_tls
        self.state: dict[str, Any] = {}

    @property
    def chain_dir(self) -> Path:
        return self.root / ("node" if self.validators == 1 else "network")

    @property
    def state_path(self) -> Path:
        return self.root / "district.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def gateway_dir(self, org: str) -> Path:
        return self.root / "gateways" / org

    def save(self) -> None:
        """Write :attr:`state` to ``district.json`` (0600: it holds passwords and tokens)."""
        write_private_file(self.state_path, (json.dumps(self.state, indent=2, ensure_ascii=False) + "\n").encode(),
                           force=True)

    def load(self) -> None:
        """Read ``district.json``, or start a new state on a fresh home; refuses a state of another version, another
        number of validators or the other GM TLS choice, and a non-empty folder that holds none."""
        if self.state_path.exists():
            try:
                self.state = json.loads(self.state_path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise InvalidInput(f"{self.state_path} is not readable JSON ({exc}); move the home aside") from None
            if not isinstance(self.state, dict) or self.state.get("version") != STATE_VERSION:
                raise InvalidInput(f"{self.state_path} is not a district state of version {STATE_VERSION}")
            if self.state.get("validators") != self.validators:
                raise InvalidInput(f"{self.root} holds a district of {self.state.get('validators')} validator(s); "
                                   f"run it with --validators {self.state.get('validators')} or choose another home")
            if bool(self.state.get("gm_tls")) != self.gm_tls:
                made = "with" if self.state.get("gm_tls") else "without"
                raise InvalidInput(f"{self.root} holds a district made {made} --gm-tls; run it {made} --gm-tls or "
                                   "choose another home")
        else:
            self.check_fresh()
            self.state = {"version": STATE_VERSION, "validators": self.validators, "gm_tls": self.gm_tls, "orgs": {},
                          "stations": []}

    def check_fresh(self) -> None:
        """Refuse a folder that is neither empty nor a district's home."""
        if (self.root.exists() and not self.state_path.exists()
                and any(p.name != "district.lock" for p in self.root.iterdir())):
            raise InvalidInput(f"{self.root} is not empty and holds no district.json: choose a new or empty --home")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``district.lock`` (with this process's id in it); refuses a home another district runs on."""
        make_private_folder(self.root)
        with open(self.root / "district.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                lock.seek(0)
                raise InvalidInput(f"{self.root} is in use by another `shancheng district run` "
                                   f"(pid {lock.read().strip() or '?'})") from None
            lock.seek(0)
            lock.truncate()
            lock.write(str(os.getpid()))
            lock.flush()
            yield
