"""Hole 8 (issue 8): private key files, attacked through the real `shancheng` command line.

Every private file the tools write must be 0600 in a 0700 folder, written to a temporary file and renamed into
place, never through a symlink, `--force` included.  Each test is the attack that worked before the fix.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shancheng.sdk.cli.keys import write_key_file
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.files import write_private_file

ENV = {k: v for k, v in os.environ.items() if k not in ("SHANCHENG_KEY_PASSWORD", "SHANCHENG_DEBUG")}
PASSWORD = "a long enough password"


def shancheng(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a user with the common umask 022 runs it (files 0644 and folders 0755 unless the tool says)."""
    out = subprocess.run(
        [sys.executable, "-m", "shancheng.sdk.cli", *args],
        capture_output=True, text=True, timeout=120, env=ENV, check=False, preexec_fn=lambda: os.umask(0o022),
    )
    assert "Traceback" not in out.stderr, out.stderr
    return out


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def pw(tmp_path: Path) -> Path:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    return tmp_path / "pw"


@pytest.fixture(scope="module")
def dev_genesis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("dev") / "home"
    out = shancheng("node", "init", "--dev", "--home", str(home))
    assert out.returncode == 0, out.stderr
    return home / "genesis.json"


def test_node_init_node_key_is_0600_in_a_0700_home(tmp_path, pw, dev_genesis):
    """Hole 8: `node init --node-key K` copied the validator key as 0644 into a 0755 home."""
    key = tmp_path / "validator.pem"
    assert shancheng("keys", "new", "--out", str(key), "--password-file", str(pw)).returncode == 0
    key.chmod(0o644)  # the operator's copy is world-readable: the node's copy must not be
    home = tmp_path / "nodes" / "v1"
    out = shancheng("node", "init", "--genesis", str(dev_genesis), "--node-key", str(key), "--home", str(home))
    assert out.returncode == 0, out.stderr
    assert mode(home / "node-key.pem") == 0o600
    assert mode(home) == 0o700
    assert stat.S_ISREG(os.lstat(home / "node-key.pem").st_mode)
    assert (home / "node-key.pem").read_bytes() == key.read_bytes()
    show = shancheng("keys", "show", str(home / "node-key.pem"), "--password-file", str(pw))
    assert show.returncode == 0, show.stderr


def test_node_init_refuses_a_node_key_that_is_not_a_private_key(tmp_path, dev_genesis):
    """Hole 8: `--node-key` copied any file (here a genesis file) into the home as the validator key."""
    home = tmp_path / "home"
    out = shancheng("node", "init", "--genesis", str(dev_genesis), "--node-key", str(dev_genesis), "--home", str(home))
    assert out.returncode == 1 and "not an SM2 private key PEM file" in out.stderr, out.stderr
    assert not home.exists()
    big = tmp_path / "big.pem"
    big.write_bytes(b"A" * (1 << 20))
    out = shancheng("node", "init", "--genesis", str(dev_genesis), "--node-key", str(big), "--home", str(home))
    assert out.returncode == 2 and "larger than" in out.stderr and not home.exists(), out.stderr


def test_dev_home_and_its_private_files_are_owner_only(dev_genesis):
    """Hole 8: the home the tool creates holds the validator key, its password and dev keys: 0700 / 0600."""
    home = dev_genesis.parent
    assert mode(home) == 0o700
    for name in ("node-key.pem", "node-key.password", "dev-accounts.json"):
        assert mode(home / name) == 0o600, name
    assert "ENCRYPTED PRIVATE KEY" in (home / "node-key.pem").read_text()


def test_keys_new_force_over_a_0644_file_leaves_0600(tmp_path, pw):
    """Hole 8: `--force` truncated an existing 0644 file and kept its mode: the new key was world-readable."""
    out_file = tmp_path / "k.pem"
    out_file.write_text("old world-readable key\n")
    out_file.chmod(0o644)
    out = shancheng("keys", "new", "--force", "--out", str(out_file), "--password-file", str(pw))
    assert out.returncode == 0, out.stderr
    assert mode(out_file) == 0o600
    assert "ENCRYPTED PRIVATE KEY" in out_file.read_text()
    plain = shancheng("keys", "new", "--force", "--unsafe-no-password", "--out", str(out_file))
    assert plain.returncode == 0, plain.stderr
    assert mode(out_file) == 0o600 and "-----BEGIN PRIVATE KEY-----" in out_file.read_text()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_keys_new_force_replaces_a_symlink_and_never_writes_its_target(tmp_path, pw):
    """Hole 8: `--force` followed a symlink at the key path and overwrote the link's target."""
    victim = tmp_path / "victim.txt"
    victim.write_text("someone else's file\n")
    victim.chmod(0o644)
    link = tmp_path / "k.pem"
    link.symlink_to(victim)
    out = shancheng("keys", "new", "--force", "--out", str(link), "--password-file", str(pw))
    assert out.returncode == 0, out.stderr
    assert victim.read_text() == "someone else's file\n" and mode(victim) == 0o644
    assert not link.is_symlink() and stat.S_ISREG(os.lstat(link).st_mode)
    assert mode(link) == 0o600 and "ENCRYPTED PRIVATE KEY" in link.read_text()


def test_dangling_symlink_is_refused_without_force_and_its_target_never_created(tmp_path, pw):
    """Hole 8: a dangling symlink at the key path: refused without --force; with --force the key went to the
    link's target (a file of the attacker's choosing), now the link itself is replaced."""
    target = tmp_path / "elsewhere" / "attacker-reads-this.pem"
    target.parent.mkdir(mode=0o755)
    link = tmp_path / "k.pem"
    link.symlink_to(target)
    out = shancheng("keys", "new", "--out", str(link), "--password-file", str(pw))
    assert out.returncode == 2 and "already exists" in out.stderr, out.stderr
    assert link.is_symlink() and not target.exists()
    out = shancheng("keys", "new", "--force", "--out", str(link), "--password-file", str(pw))
    assert out.returncode == 0, out.stderr
    assert not target.exists()
    assert not link.is_symlink() and mode(link) == 0o600


def test_keys_new_creates_a_missing_folder_0700(tmp_path, pw):
    """Hole 8: key files belong in owner-only folders; a folder the tool creates is 0700."""
    out_file = tmp_path / "new" / "keys" / "org.pem"
    out = shancheng("keys", "new", "--out", str(out_file), "--password-file", str(pw))
    assert out.returncode == 0, out.stderr
    assert mode(out_file) == 0o600 and mode(out_file.parent) == 0o700 and mode(out_file.parent.parent) == 0o700
    into_dir = shancheng("keys", "new", "--force", "--out", str(tmp_path / "new"), "--password-file", str(pw))
    assert into_dir.returncode == 2 and "is a folder" in into_dir.stderr, into_dir.stderr


def test_the_api_refuses_an_unencrypted_key_unless_asked_unsafely(tmp_path):
    """Hole 8: the password rules hold in the API, not only in `keys new`."""
    key = SM2PrivateKey.generate()
    with pytest.raises(InvalidInput, match="unencrypted"):
        write_key_file(tmp_path / "k.pem", key, None)
    with pytest.raises(InvalidInput, match="at least 8 bytes"):
        write_key_file(tmp_path / "k.pem", key, b"x")
    assert not os.path.lexists(tmp_path / "k.pem")
    assert os.listdir(tmp_path) == []  # no temporary file left behind either
    write_key_file(tmp_path / "k.pem", key, None, unsafe_unencrypted=True)
    assert SM2PrivateKey.from_pem((tmp_path / "k.pem").read_bytes()).to_int() == key.to_int()
    assert mode(tmp_path / "k.pem") == 0o600


def test_write_private_file_is_exactly_0600_under_a_permissive_umask(tmp_path):
    """Hole 8: a private file's mode does not depend on the umask or on a file that was there before."""
    old = os.umask(0)
    try:
        write_private_file(tmp_path / "sub" / "secret", b"s1")
        (tmp_path / "other").write_bytes(b"x")
        os.chmod(tmp_path / "other", 0o666)
        write_private_file(tmp_path / "other", b"s2", force=True)
    finally:
        os.umask(old)
    assert mode(tmp_path / "sub" / "secret") == 0o600 and mode(tmp_path / "sub") == 0o700
    assert mode(tmp_path / "other") == 0o600 and (tmp_path / "other").read_bytes() == b"s2"
    with pytest.raises(InvalidInput, match="already exists"):
        write_private_file(tmp_path / "other", b"s3")
    assert (tmp_path / "other").read_bytes() == b"s2"
