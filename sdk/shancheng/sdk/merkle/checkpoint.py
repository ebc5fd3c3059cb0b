"""Signed checkpoints: C2SP ``tlog-checkpoint`` bodies in C2SP ``signed-note`` envelopes, signed with SM2.

A checkpoint commits to a tree head::

    <origin>\\n
    <tree size, decimal>\\n
    <base64 root hash>\\n
    [extension lines]\\n
    \\n
    — <key name> <base64(key ID (4 bytes) || DER SM2 signature)>\\n

Signature type.  C2SP assigns signature-type bytes to algorithms (0x01
Ed25519, ...); SM2 has none, so Shancheng uses **0xFF**, the value C2SP keeps
for algorithms without an assigned type.  The key ID is, as the spec
recommends, ``SHA-256(key name || 0x0A || 0xFF || 04 || x || y)[:4]`` and a
verifier key is written ``<name>+<hex key ID>+<base64(0xFF || 04 || x || y)>``.
The signature is SM2 (SM3 digest, default user ID ``1234567812345678``) over
the note text: every byte up to and including the newline that ends the
last body line, excluding the blank separator line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from dataclasses import dataclass

from ..crypto import SM2PrivateKey, SM2PublicKey
from ..errors import InvalidInput, InvalidKey, InvalidSignature, VerificationError

__all__ = [
    "SIGNATURE_TYPE_SM2",
    "Checkpoint",
    "CheckpointError",
    "NoteSigner",
    "NoteVerifier",
    "VerifiedCheckpoint",
    "open_checkpoint",
    "verify_checkpoint",
]

SIGNATURE_TYPE_SM2 = 0xFF
MAX_NOTE_SIZE = 64 * 1024
MAX_SIGNATURES = 100
_DASH = "\u2014 "
_NAME_RE = re.compile(r"^[^\s+]+$")
_SIZE_RE = re.compile(r"^(0|[1-9][0-9]{0,19})$")


class CheckpointError(VerificationError):
    """A signed checkpoint is malformed, unsigned by a trusted key, or badly signed."""


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or not _NAME_RE.match(name):
        raise InvalidInput("note key name must be non-empty, without spaces or '+'")
    return name


def _key_id(name: str, point: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + bytes([SIGNATURE_TYPE_SM2]) + point).digest()[:4]


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: origin (the log's name), size, root, optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise InvalidInput("checkpoint origin must be a non-empty single line")
        if not isinstance(self.size, int) or isinstance(self.size, bool) or not 0 <= self.size < 1 << 64:
            raise InvalidInput("checkpoint size must be an unsigned 64-bit integer")
        if not isinstance(self.root, bytes) or len(self.root) != 32:
            raise InvalidInput("checkpoint root must be 32 bytes")
        for line in self.extensions:
            if not line or "\n" in line:
                raise InvalidInput("checkpoint extension lines must be non-empty single lines")

    def body(self) -> bytes:
        """The note text that signatures cover."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode(), *self.extensions]
        text = "".join(line + "\n" for line in lines)
        if any(ord(c) < 0x20 and c != "\n" for c in text):
            raise InvalidInput("checkpoint text must not contain control characters")
        return text.encode("utf-8")

    def sign(self, *signers: NoteSigner) -> str:
        """The signed note, with one signature line per signer."""
        if not signers:
            raise InvalidInput("a checkpoint needs at least one signer")
        body = self.body()
        sig_lines = [signer.signature_line(body) for signer in signers]
        return body.decode() + "\n" + "".join(sig_lines)

    @classmethod
    def parse_body(cls, text: str) -> Checkpoint:
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise CheckpointError("checkpoint body must have origin, size and root lines, each ending in a newline")
        origin, size_s, root_s, *ext = lines[:-1]
        if not origin:
            raise CheckpointError("checkpoint origin line is empty")
        if not _SIZE_RE.match(size_s):
            raise CheckpointError(f"checkpoint size line {size_s[:40]!r} is not a decimal integer")
        try:
            root = base64.b64decode(root_s, validate=True)
        except binascii.Error as exc:
            raise CheckpointError("checkpoint root line is not base64") from exc
        if len(root) != 32:
            raise CheckpointError("checkpoint root is not 32 bytes")
        try:
            return cls(origin=origin, size=int(size_s), root=root, extensions=tuple(ext))
        except InvalidInput as exc:
            raise CheckpointError(str(exc)) from exc


@dataclass(frozen=True)
class NoteVerifier:
    """A named SM2 public key that checkpoints can be verified against."""

    name: str
    public_key: SM2PublicKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def key_id(self) -> bytes:
        return _key_id(self.name, self.public_key.to_bytes())

    def to_vkey(self) -> str:
        blob = bytes([SIGNATURE_TYPE_SM2]) + self.public_key.to_bytes()
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(blob).decode()}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        if not isinstance(vkey, str) or len(vkey) > 1024:
            raise InvalidKey("verifier key must be a short string")
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise InvalidKey("verifier key must look like <name>+<hex key id>+<base64 key>")
        name, hex_id, b64 = parts
        try:
            blob = base64.b64decode(b64, validate=True)
            key_id = bytes.fromhex(hex_id)
        except (binascii.Error, ValueError) as exc:
            raise InvalidKey("verifier key has a bad key ID or key encoding") from exc
        if len(blob) != 66 or blob[0] != SIGNATURE_TYPE_SM2:
            raise InvalidKey("verifier key is not an SM2 (type 0xFF) key")
        verifier = cls(name=_check_name(name), public_key=SM2PublicKey.from_bytes(blob[1:]))
        if not hmac.compare_digest(verifier.key_id, key_id):
            raise InvalidKey("verifier key ID does not match its name and key")
        return verifier

    def verify(self, body: bytes, signature: bytes) -> None:
        self.public_key.verify(signature, body)


@dataclass(frozen=True)
class NoteSigner:
    """A named SM2 private key that signs checkpoints."""

    name: str
    private_key: SM2PrivateKey

    def __post_init__(self) -> None:
        _check_name(self.name)

    @property
    def verifier(self) -> NoteVerifier:
        return NoteVerifier(self.name, self.private_key.public_key())

    def signature_line(self, body: bytes) -> str:
        sig = self.private_key.sign(body)
        blob = self.verifier.key_id + sig
        return f"{_DASH}{self.name} {base64.b64encode(blob).decode()}\n"

    def __repr__(self) -> str:
        return f"NoteSigner(name={self.name!r})"


def _split_note(note: str) -> tuple[str, list[tuple[str, bytes, bytes]]]:
    if not isinstance(note, str):
        raise CheckpointError("signed note must be text")
    if len(note) > MAX_NOTE_SIZE or len(note.encode("utf-8", "surrogatepass")) > MAX_NOTE_SIZE:
        raise CheckpointError(f"signed note is larger than {MAX_NOTE_SIZE} bytes")
    if any("\ud800" <= c <= "\udfff" for c in note):  # not UTF-8 text: the signed bytes would not exist
        raise CheckpointError("signed note contains a lone surrogate (not UTF-8 text)")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise CheckpointError("signed note contains control characters")
    cut = note.rfind("\n\n")
    if cut < 0:
        raise CheckpointError("signed note has no blank line before its signatures")
    text, sig_block = note[: cut + 1], note[cut + 2 :]
    if not sig_block.endswith("\n"):
        raise CheckpointError("signed note's signature block must end with a newline")
    sigs = []
    for line in sig_block[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise CheckpointError("malformed signature line (must start with an em dash and a space)")
        fields = line[len(_DASH) :].split(" ")
        if len(fields) != 2:
            raise CheckpointError("malformed signature line (expected a key name and a signature)")
        name, b64 = fields
        try:
            blob = base64.b64decode(b64, validate=True)
        except binascii.Error as exc:
            raise CheckpointError("signature line is not base64") from exc
        if len(blob) < 5:
            raise CheckpointError("signature line is too short")
        sigs.append((name, blob[:4], blob[4:]))
    if not sigs:
        raise CheckpointError("signed note has no signatures")
    if len(sigs) > MAX_SIGNATURES:
        raise CheckpointError(f"signed note has more than {MAX_SIGNATURES} signatures")
    return text, sigs


@dataclass(frozen=True)
class VerifiedCheckpoint:
    checkpoint: Checkpoint
    signers: tuple[NoteVerifier, ...]


def open_checkpoint(note: str, verifiers: list[NoteVerifier] | tuple[NoteVerifier, ...]) -> Checkpoint:
    """Parse a signed checkpoint and verify it against the trusted ``verifiers``.

    Passes when at least one trusted key signed it and every signature by a
    trusted key verifies; signatures by unknown keys are ignored (as C2SP
    requires).  Raises :class:`CheckpointError` otherwise.
    """
    return verify_checkpoint(note, verifiers).checkpoint


def verify_checkpoint(note: str, verifiers: list[NoteVerifier] | tuple[NoteVerifier, ...]) -> VerifiedCheckpoint:
    """Like :func:`open_checkpoint`, also telling which trusted keys signed."""
    if not verifiers:
        raise CheckpointError("no trusted checkpoint keys given")
    text, sigs = _split_note(note)
    body = text.encode("utf-8")
    trusted = {(v.name, v.key_id): v for v in verifiers}
    verified: list[NoteVerifier] = []
    for name, key_id, sig in sigs:
        verifier = trusted.get((name, key_id))
        if verifier is None:
            continue
        try:
            verifier.verify(body, sig)
        except InvalidSignature as exc:
            raise CheckpointError(f"checkpoint signature by {name} does not verify") from exc
        verified.append(verifier)
    if not verified:
        names = ", ".join(sorted({n for n, _, _ in sigs}))
        raise CheckpointError(f"checkpoint is not signed by a trusted key (signed by: {names})")
    return VerifiedCheckpoint(Checkpoint.parse_body(text), tuple(verified))
