"""``shancheng gateway init``, ``token create|list|revoke`` and ``key register|list|revoke`` as a user runs them (real
processes, real files)."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

from shancheng.apps.gateway.settings import GatewaySettings


def shancheng(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shancheng.sdk.cli", "gateway", *args], check=False,
                          capture_output=True,
                          text=True, timeout=120)


def test_init_and_token_lifecycle(tmp_path: Path) -> None:
    home = tmp_path / "gw"
    done = shancheng("init", "--home", str(home), "--org", "hospital", "--genesis", "../genesis.json")
    assert done.returncode == 0, done.stderr
    config = home / "gateway.toml"
    settings = GatewaySettings.load(config)
    assert settings.org == "hospital" and settings.genesis.resolve() == tmp_path / "genesis.json"
    assert settings.database_url == f"sqlite:///{home / 'data' / 'gateway.db'}"
    assert stat.S_IMODE((home / "data" / "session-secret").stat().st_mode) == 0o600
    assert shancheng("init", "--home", str(home), "--org", "hospital").returncode != 0  # never overwrites

    made = shancheng("token", "create", "--config", str(config), "--subject", "root", "--role", "admin", "--json")
    assert made.returncode == 0, made.stderr
    token = json.loads(made.stdout)
    assert token["token"].startswith(f"sc_{token['id']}_") and token["active"] is True
    bad = shancheng("token", "create", "--config", str(config), "--subject", "x", "--role", "emperor")
    assert bad.returncode != 0 and bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
    listed = json.loads(shancheng("token", "list", "--config", str(config), "--json").stdout)
    assert [t["id"] for t in listed] == [token["id"]] and "token" not in listed[0]
    assert shancheng("token", "revoke", "--config", str(config), token["id"]).returncode == 0
    listed = json.loads(shancheng("token", "list", "--config", str(config), "--json").stdout)
    assert listed[0]["active"] is False and listed[0]["revoked_at"]
    assert shancheng("token", "revoke", "--config", str(config), "0" * 16).returncode != 0


def test_sm2_request_keys_are_listed_and_revoked_for_good(tmp_path: Path) -> None:
    from shancheng.sdk.crypto import SM2PrivateKey

    home = tmp_path / "gw"
    assert shancheng("init", "--home", str(home), "--org", "hospital").returncode == 0
    config = str(home / "gateway.toml")
    public = SM2PrivateKey.generate().public_key().to_bytes().hex()
    made = shancheng("key", "register", "--config", config, "--subject", "his", "--role", "doctor", "--public-key",
                     public)
    assert made.returncode == 0, made.stderr
    key_id = made.stdout.strip()
    listed = json.loads(shancheng("key", "list", "--config", config, "--json").stdout)
    assert [(k["key_id"], k["subject"], k["active"]) for k in listed] == [(key_id, "his", True)]
    assert shancheng("key", "revoke", "--config", config, key_id).returncode == 0
    again = shancheng("key", "register", "--config", config, "--subject", "his", "--role", "admin", "--public-key",
                      public)
    assert again.returncode != 0 and again.stderr.startswith("error:") and "revoked" in again.stderr
    assert "Traceback" not in again.stderr
    listed = json.loads(shancheng("key", "list", "--config", config, "--json").stdout)
    assert [(k["role"], k["active"]) for k in listed] == [("doctor", False)]
    text = shancheng("key", "list", "--config", config).stdout
    assert key_id in text and "revoked" in text
    assert shancheng("key", "revoke", "--config", config, "ab" * 20).returncode != 0
    bad = shancheng("key", "register", "--config", config, "--subject", "x", "--role", "doctor", "--public-key", "04zz")
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1


def test_a_broken_configuration_is_one_readable_line(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text('org = "hospital"\nnode_urls = ["ftp://x"]\n')
    done = shancheng("token", "list", "--config", str(config))
    assert done.returncode != 0 and done.stderr.count("\n") == 1 and done.stderr.startswith("error:")
