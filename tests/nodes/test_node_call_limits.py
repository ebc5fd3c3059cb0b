"""config.toml's ``[rpc]`` limits on calls are checked when the node starts: a call_nice outside 0..19 (and a
non-number) is a one-line error naming the setting, and no node starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_node_process import cli

pytestmark = pytest.mark.network


@pytest.mark.parametrize(("value", "message"), [
    ("25", "config.toml [rpc]: call_nice must be between 0 and 19"),
    ("-1", "config.toml [rpc]: call_nice must be between 0 and 19"),
    ('"high"', "call_nice must be numbers"),
])
def test_a_call_nice_out_of_range_is_a_one_line_error(tmp_path: Path, value: str, message: str) -> None:
    home = tmp_path / "node"
    assert cli("node", "init", "--dev", "--home", str(home)).returncode == 0
    config = (home / "config.toml").read_text()
    assert "# call_nice = 10" in config
    (home / "config.toml").write_text(config.replace("# call_nice = 10", f"call_nice = {value}"))
    out = cli("node", "start", "--home", str(home), "--rpc-port", "0", "--ws-port", "0")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert message in out.stderr.strip().splitlines()[-1]
