"""``shancheng evidence verify`` cannot be crashed (issue 8, holes 3 and 10), and a fuzz of the verifier.

Hole 3: an 800 KB package of nested ``[`` made ``evidence verify`` die with SIGSEGV (exit 139): the CLI
imports py-evm, which lifts Python's recursion limit to 100,000, so ``json.loads`` overflowed the C stack.
Hole 10: duplicate keys were read last-wins (``"chain": {...}, "chain": null`` read as null), ``"version":
true`` passed as the integer 1, and a 5,000-digit integer ended in an uncaught error (exit 70).

The fuzz mutates a real package generically (it does not depend on the exact field names): every mutation
is refused with a :class:`ShanchengError` -- or accepted only when the document is still the valid package.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shancheng.sdk.cli import main as cli_main
from shancheng.sdk.crypto import SM2PrivateKey
from shancheng.sdk.errors import ShanchengError
from shancheng.sdk.evidence import EvidenceBatch, verify_package
from shancheng.sdk.merkle import NoteSigner
from shancheng.sdk.records import RecordStatement, commit_salted

SHANCHENG = Path(sys.executable).parent / "shancheng"  # the real console script in .venv/bin
ENV = {k: v for k, v in os.environ.items() if k not in ("SHANCHENG_KEY_PASSWORD", "SHANCHENG_DEBUG")}
ORIGIN = "district.example/log/hosp-001"
SIGNER = NoteSigner("district.example/gw-1", SM2PrivateKey.generate())
VKEY = SIGNER.verifier.to_vkey()


def _build_package() -> str:
    """A valid package (no chain proofs), verified against the pinned checkpoint key ``VKEY``."""
    batch = EvidenceBatch(origin=ORIGIN, signer=SIGNER)
    author = SM2PrivateKey.generate()
    for i in range(3):
        batch.add(RecordStatement("prescription", ORIGIN, i, commit_salted({"rx": i})[0]).sign(author))
    return batch.package(1).dumps()


GOOD_TEXT = _build_package()
GOOD = json.loads(GOOD_TEXT)


def shancheng(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([str(SHANCHENG), *args], capture_output=True, text=True, timeout=120, env=ENV, check=False)
    assert "Traceback" not in out.stderr, out.stderr
    return out


def verify_file(tmp_path: Path, text: str | bytes) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "pkg.json"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return shancheng("evidence", "verify", str(path), "--checkpoint-key", VKEY)


def one_line_refusal(out: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr[-500:])
    assert out.stderr.count("\n") == 1 and not out.stdout, out.stderr[-500:]
    return out.stderr


def test_the_good_package_verifies_through_the_console_script(tmp_path: Path) -> None:
    out = verify_file(tmp_path, GOOD_TEXT)
    assert out.returncode == 0, out.stderr


# -- hole 3 ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", ["[" * 800_000, '{"a":' * 160_000, "[" * 400_000 + "]" * 400_000])
def test_an_800kb_nested_package_is_refused_not_a_segfault(tmp_path: Path, body: str) -> None:
    assert len(body) >= 800_000
    message = one_line_refusal(verify_file(tmp_path, body))
    assert "nested deeper than" in message


def test_a_deep_record_file_is_refused_not_a_segfault(tmp_path: Path) -> None:
    (tmp_path / "pkg.json").write_text(GOOD_TEXT)
    (tmp_path / "record.json").write_text("[" * 800_000)
    out = shancheng("evidence", "verify", str(tmp_path / "pkg.json"), "--checkpoint-key", VKEY,
                    "--record", str(tmp_path / "record.json"), "--salt", "00" * 16)
    assert "nested deeper than" in one_line_refusal(out, code=2)


# -- hole 10 -----------------------------------------------------------------------------------------------


def _with_raw(doc: dict[str, Any], raw_members: str) -> str:
    """``doc`` as JSON text with ``raw_members`` (text such as ``"k": 1``) appended to the top object."""
    text = json.dumps(doc)
    return text[:-1] + (", " if doc else "") + raw_members + "}"


def test_a_duplicated_chain_key_is_refused_not_read_as_null(tmp_path: Path) -> None:
    doc = {k: v for k, v in GOOD.items() if k != "chain"}
    attack = _with_raw(doc, '"chain": {"anchor": {"block_number": 1}}, "chain": null')
    assert json.loads(attack)["chain"] is None  # what plain json reads: the chain proof silently gone
    assert "duplicate key 'chain'" in one_line_refusal(verify_file(tmp_path, attack))


def test_any_duplicated_key_is_refused_even_with_the_same_value(tmp_path: Path) -> None:
    key = min(GOOD)
    doc = {k: v for k, v in GOOD.items() if k != key}
    attack = _with_raw(doc, f"{json.dumps(key)}: {json.dumps(GOOD[key])}, {json.dumps(key)}: {json.dumps(GOOD[key])}")
    assert json.loads(attack) == GOOD
    assert f"duplicate key {key!r}" in one_line_refusal(verify_file(tmp_path, attack))


def test_version_true_is_not_an_integer(tmp_path: Path) -> None:
    attack = json.dumps({**GOOD, "version": True})
    assert "version" in one_line_refusal(verify_file(tmp_path, attack))
    for version in (True, float(GOOD["version"]), str(GOOD["version"])):  # true == 1 and 2.0 == 2 in Python
        with pytest.raises(ShanchengError, match="version"):
            verify_package(json.dumps({**GOOD, "version": version}), checkpoint_keys=[SIGNER.verifier])


def test_fuzz_finding_a_package_naming_a_checkpoint_signer_it_was_not_signed_by_is_refused() -> None:
    """Found by the fuzz below: with a pinned checkpoint key the package's own ``checkpoint.signer`` was
    never read, so any text there (a garbled key, another log's key) still verified. A field the package
    claims must be proven or refused."""
    other = NoteSigner("district.example/gw-9", SM2PrivateKey.generate()).verifier.to_vkey()
    for signer in (other, GOOD["checkpoint"]["signer"].upper(), "x"):
        doc = json.loads(GOOD_TEXT)
        doc["checkpoint"]["signer"] = signer
        with pytest.raises(ShanchengError):
            verify_package(json.dumps(doc), checkpoint_keys=[SIGNER.verifier])


def test_a_5000_digit_integer_is_refused_with_exit_1_not_70(tmp_path: Path) -> None:
    attack = json.dumps({**GOOD, "version": "HUGE"}).replace('"HUGE"', "9" * 5000)
    assert "more than 80 digits" in one_line_refusal(verify_file(tmp_path, attack))


# -- fuzz: mutate the real package generically ---------------------------------------------------------------

HOLE = "\u0000HOLE\u0000"


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path to a value inside ``value`` (the root is ``()``)."""
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


GOOD_PATHS = _paths(GOOD)
OBJECT_PATHS = [p for p in GOOD_PATHS if isinstance(_at(GOOD, p), dict)]


def _deep(n: int, opener: str, closer: str, leaf: str = "1") -> str:
    return opener * n + leaf + closer * n


_SNIPPETS = st.one_of(
    st.integers(min_value=1, max_value=50_000).map(lambda n: _deep(n, "[", "]")),
    st.integers(min_value=1, max_value=50_000).map(lambda n: _deep(n, '{"a":', "}")),
    st.integers(min_value=1, max_value=200_000).map(lambda n: "[" * n),  # unbalanced: invalid and deep
    st.integers(min_value=1, max_value=6000).map(lambda n: "9" * n),
    st.integers(min_value=1, max_value=300).map(lambda n: "-0." + "1" * n),
    st.integers(min_value=1, max_value=1_100_000).map(lambda n: '"' + "A" * n + '"'),
    st.sampled_from(["true", "false", "null", "0", "-1", "1.0", "1e999", "NaN", "-Infinity", "{}", "[]", '""',
                     '"\\ud800"', '{"a": 1, "a": 1}', '[{"x": [], "x": {}}]', "18446744073709551616",
                     '"0x00"', '"04"', "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"]),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
        max_leaves=30,
    ).map(json.dumps),
)


@st.composite
def mutated_packages(draw: st.DrawFn) -> str:
    kind = draw(st.sampled_from(["replace", "duplicate", "add", "delete", "truncate", "wrap", "retype"]))
    doc = json.loads(GOOD_TEXT)
    if kind == "replace":  # any value (or the whole document) becomes a snippet of hostile JSON
        path = draw(st.sampled_from(GOOD_PATHS))
        snippet = draw(_SNIPPETS)
        if not path:
            return snippet
        _at(doc, path[:-1])[path[-1]] = HOLE
        return json.dumps(doc).replace(json.dumps(HOLE), snippet)
    if kind == "duplicate":  # an object gets one of its keys a second time, with the same or a hostile value
        path = draw(st.sampled_from(OBJECT_PATHS))
        obj = _at(doc, path)
        key = draw(st.sampled_from(sorted(obj)))
        value = draw(st.sampled_from([json.dumps(obj[key]), "null", "{}", "1"]) | _SNIPPETS)
        obj[HOLE] = 0
        return json.dumps(doc).replace(f"{json.dumps(HOLE)}: 0", f"{json.dumps(key)}: {value}")
    if kind == "add":
        path = draw(st.sampled_from(OBJECT_PATHS))
        _at(doc, path)[draw(st.text(min_size=1, max_size=10))] = HOLE
        return json.dumps(doc).replace(json.dumps(HOLE), draw(_SNIPPETS))
    if kind == "delete":
        path = draw(st.sampled_from([p for p in GOOD_PATHS if p]))
        del _at(doc, path[:-1])[path[-1]]
        return json.dumps(doc)
    if kind == "truncate":
        text = json.dumps(doc)
        return text[: draw(st.integers(min_value=0, max_value=len(text) - 1))]
    if kind == "wrap":
        n = draw(st.integers(min_value=1, max_value=300_000))
        return "[" * n + json.dumps(doc) + "]" * n
    # retype: a value keeps its meaning but changes JSON type (1 -> "1", 1.0, true; "x" -> ["x"]; ...)
    path = draw(st.sampled_from([p for p in GOOD_PATHS if p]))
    value = _at(doc, path)
    options: list[Any] = [str(value), [value], {"value": value}, None]
    if isinstance(value, int):
        options += [float(value), bool(value), value + (1 << 64), -value - 1]
    if isinstance(value, str):
        options += [value.upper(), value + "\u0000", value.encode().hex(), len(value)]
    _at(doc, path[:-1])[path[-1]] = draw(st.sampled_from(options))
    return json.dumps(doc)


def _without_nulls(value: Any) -> Any:
    """``value`` with null members dropped: an optional field given as null means the same as one left out."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _is_the_good_package(text: str) -> bool:
    """Whether ``text`` still says exactly what the good package says (booleans are not numbers here)."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return json.dumps(_without_nulls(value), sort_keys=True) == json.dumps(_without_nulls(GOOD), sort_keys=True)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_packages())
def test_fuzz_verify_package_refuses_every_mutation_with_a_shancheng_error(text: str) -> None:
    for data in (text, text.encode("utf-8", "surrogatepass")):
        try:
            verify_package(data, checkpoint_keys=[SIGNER.verifier])
        except ShanchengError as exc:
            assert str(exc) and "\n" not in str(exc), repr(str(exc))
            continue
        assert _is_the_good_package(text), f"a mutated package verified: {text[:300]!r}"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(mutated_packages(), st.sampled_from([[], ["--json"]]))
def test_fuzz_cli_main_in_process_exits_0_1_or_2_with_one_line(text: str, extra: list[str]) -> None:
    """The in-process CLI (py-evm imported: recursion limit 100,000) never crashes or exits 70."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "pkg.json"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(["evidence", "verify", str(path), "--checkpoint-key", VKEY, *extra])
    if code == 0:
        assert _is_the_good_package(text), f"a mutated package verified: {text[:300]!r}"
        return
    assert code in (1, 2), (code, err.getvalue()[-500:])
    shown = out.getvalue() if extra else err.getvalue()
    assert shown.count("\n") == 1 and "Traceback" not in shown, shown[-500:]
    if extra and code == 1:
        assert json.loads(shown)["valid"] is False


def test_fuzz_random_bytes_never_crash_the_verifier() -> None:
    rng = random.Random(8)
    good = GOOD_TEXT.encode()
    for _ in range(400):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            verify_package(bytes(data), checkpoint_keys=[SIGNER.verifier])
        except ShanchengError:
            continue
        assert _is_the_good_package(bytes(data).decode("utf-8")), bytes(data)[:300]
