"""The CometBFT binary: the pinned version, where it is found, and running its one-shot commands.

CometBFT is pinned (:data:`COMETBFT_VERSION`) and installed by ``make .bin/cometbft`` into the checkout's ``.bin/``
(``CGO_ENABLED=0 go install github.com/cometbft/cometbft/cmd/cometbft@v…``). :func:`cometbft_binary` finds it:
``$SHANCHENG_COMETBFT``, else ``<checkout>/.bin/cometbft``, else ``cometbft`` on ``PATH``.

>>> COMETBFT_VERSION
'0.38.25'
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from .errors import CometBinaryNotFound, CometProcessError

__all__ = ["COMETBFT_VERSION", "cometbft_binary", "run_cometbft"]

COMETBFT_VERSION = "0.38.25"
_CHECKOUT = Path(__file__).resolve().parents[4]  # nodes/shancheng/nodes/cometbft/binary.py -> the checkout


def cometbft_binary() -> Path:
    """The CometBFT executable: ``$SHANCHENG_COMETBFT``, else ``<checkout>/.bin/cometbft``, else ``PATH``."""
    configured = os.environ.get("SHANCHENG_COMETBFT")
    if configured:
        path = Path(configured)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise CometBinaryNotFound(f"SHANCHENG_COMETBFT={configured} is not an executable file")
        return path
    local = _CHECKOUT / ".bin" / "cometbft"
    if local.is_file() and os.access(local, os.X_OK):
        return local
    found = shutil.which("cometbft")
    if found:
        return Path(found)
    raise CometBinaryNotFound(
        f"CometBFT {COMETBFT_VERSION} is not installed: run `make .bin/cometbft` (needs Go >= 1.22) "
        "or set SHANCHENG_COMETBFT"
    )


def run_cometbft(args: Sequence[str], *, what: str, timeout: float = 60) -> str:
    try:
        proc = subprocess.run([str(cometbft_binary()), *args], capture_output=True, text=True, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired:
        raise CometProcessError(f"`cometbft {' '.join(args)}` did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise CometProcessError(f"cannot run cometbft: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        raise CometProcessError(f"{what} failed (`cometbft {' '.join(args)}`): {last[0]}")
    return proc.stdout
