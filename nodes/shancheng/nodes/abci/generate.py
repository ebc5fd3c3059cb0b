"""Generate the Python classes of CometBFT's ABCI messages (``make proto``).

The ``.proto`` files are CometBFT's, so they are not committed: this module asks Go for the pinned module
(``go mod download -json github.com/cometbft/cometbft@<version>``), finds the gogoproto version that module's
``go.mod`` pins and downloads it the same way, then runs ``grpc_tools.protoc`` over ``tendermint/abci``,
``tendermint/crypto``, ``tendermint/types``, ``tendermint/version`` and ``gogoproto/gogo.proto``. The ``*_pb2.py``
files land in ``shancheng/nodes/abci/_generated/`` (gitignored), with their imports rewritten to resolve inside
that package, so they never collide with another copy of the same files on ``sys.path``. The folder is replaced
in one rename; ``_generated/STAMP`` names the versions it was made from.

Usage: ``python -m shancheng.nodes.abci.generate [--cometbft-version v0.38.25]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from shancheng.sdk.errors import ShanchengError

__all__ = ["GENERATED_DIR", "GENERATED_PACKAGE", "GenerationError", "generate", "main"]

GENERATED_PACKAGE = "shancheng.nodes.abci._generated"
GENERATED_DIR = Path(__file__).resolve().parent / "_generated"
COMETBFT_MODULE = "github.com/cometbft/cometbft"
GOGOPROTO_MODULE = "github.com/cosmos/gogoproto"
PROTO_FOLDERS = ("tendermint/abci", "tendermint/crypto", "tendermint/types", "tendermint/version")
_TOP_PACKAGES = ("tendermint", "gogoproto")
_IMPORT = re.compile(rf"^(from|import) ({'|'.join(_TOP_PACKAGES)})(\.[\w.]+)?( |$)", re.MULTILINE)
_MODULE_NAME = re.compile(rf"(BuildTopDescriptorsAndMessages\(DESCRIPTOR, ')((?:{'|'.join(_TOP_PACKAGES)})\.)")


class GenerationError(ShanchengError):
    """The ABCI message classes could not be generated (Go, the module download or protoc failed)."""


def _go() -> str:
    exe = shutil.which("go")
    if exe is None:
        raise GenerationError("Go >= 1.22 is required to fetch CometBFT's .proto files, and `go` is not on PATH")
    return exe


def _module_dir(module: str, version: str) -> Path:
    """The folder of ``module@version`` in Go's module cache (downloaded if needed)."""
    env = dict(os.environ, GOFLAGS="-mod=mod", GO111MODULE="on")
    with tempfile.TemporaryDirectory() as outside_any_module:
        out = subprocess.run(
            [_go(), "mod", "download", "-json", f"{module}@{version}"], cwd=outside_any_module, env=env,
            capture_output=True, text=True, timeout=600, check=False,
        )
    try:
        info = json.loads(out.stdout)
    except ValueError:
        info = {}
    if out.returncode != 0 or not isinstance(info, dict) or not info.get("Dir"):
        detail = (info.get("Error") if isinstance(info, dict) else None) or out.stderr.strip().splitlines()[-1:]
        raise GenerationError(f"go mod download {module}@{version} failed: {detail}")
    return Path(info["Dir"])


def pinned_version(go_mod: str, module: str) -> str:
    """The version of ``module`` that a ``go.mod`` text requires (a ``replace`` of it is honoured)."""
    name = re.escape(module)
    replace = re.search(rf"^\s*(?:replace\s+)?{name}(?:\s+\S+)?\s+=>\s+(\S+)\s+(v\S+)", go_mod, re.MULTILINE)
    if replace:
        if replace.group(1) != module:
            raise GenerationError(f"go.mod replaces {module} with {replace.group(1)}; only versions are supported")
        return replace.group(2)
    require = re.search(rf"^\s*(?:require\s+)?{name}\s+(v\S+)", go_mod, re.MULTILINE)
    if require is None:
        raise GenerationError(f"go.mod does not require {module}")
    return require.group(1)


def _rewrite_imports(source: str) -> str:
    """Point the generated imports (and the classes' ``__module__``) into :data:`GENERATED_PACKAGE`."""
    source = _IMPORT.sub(lambda m: f"{m.group(1)} {GENERATED_PACKAGE}.{m.group(2)}{m.group(3) or ''}{m.group(4)}",
                         source)
    return _MODULE_NAME.sub(lambda m: f"{m.group(1)}{GENERATED_PACKAGE}.{m.group(2)}", source)


def generate(cometbft_version: str, *, target: Path = GENERATED_DIR) -> Path:
    """Generate the message classes for ``cometbft_version`` (e.g. ``v0.38.25``) into ``target``."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:
        raise GenerationError("grpcio-tools is not installed (pip install -e '.[dev]' or make venv)") from exc
    import importlib.resources

    comet = _module_dir(COMETBFT_MODULE, cometbft_version)
    gogo_version = pinned_version((comet / "go.mod").read_text(), GOGOPROTO_MODULE)
    gogo = _module_dir(GOGOPROTO_MODULE, gogo_version)
    well_known = Path(str(importlib.resources.files("grpc_tools") / "_proto"))
    protos = sorted(
        str(p.relative_to(comet / "proto")) for folder in PROTO_FOLDERS for p in (comet / "proto" / folder).glob("*.proto")
    )
    if not any(p == "tendermint/abci/types.proto" for p in protos):
        raise GenerationError(f"{comet} has no proto/tendermint/abci/types.proto")
    protos.append("gogoproto/gogo.proto")

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".generating-", dir=target.parent))
    try:
        args = ["grpc_tools.protoc", f"-I{comet / 'proto'}", f"-I{gogo}", f"-I{well_known}",
                f"--python_out={work}", f"--pyi_out={work}", *protos]
        if protoc.main(args) != 0:
            raise GenerationError(f"protoc failed on CometBFT {cometbft_version}'s .proto files (see above)")
        for path in sorted(work.rglob("*.py*")):
            if path.suffix in (".py", ".pyi"):
                path.write_text(_rewrite_imports(path.read_text()))
        for folder in [work, *(p for p in work.rglob("*") if p.is_dir())]:
            (folder / "__init__.py").touch()
        (work / "__init__.py").write_text(
            f'"""CometBFT {cometbft_version} ABCI messages, generated by shancheng.nodes.abci.generate."""\n'
        )
        (work / "STAMP").write_text(json.dumps({
            "cometbft": cometbft_version, "gogoproto": gogo_version, "protoc": _protoc_version(),
        }, sort_keys=True) + "\n")
        old = target.with_name(f".old-{os.getpid()}")
        if target.exists():
            target.rename(old)
        work.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _protoc_version() -> str:
    out = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "--version"], capture_output=True, text=True,
                         timeout=60, check=False)
    return out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    from shancheng.nodes.cometbft.binary import COMETBFT_VERSION

    parser = argparse.ArgumentParser(prog="python -m shancheng.nodes.abci.generate", description=__doc__.split("\n")[0])
    parser.add_argument("--cometbft-version", default=f"v{COMETBFT_VERSION}")
    parser.add_argument("--out", type=Path, default=GENERATED_DIR)
    args = parser.parse_args(argv)
    try:
        out = generate(args.cometbft_version, target=args.out)
    except ShanchengError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"generated CometBFT {args.cometbft_version} ABCI messages into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
