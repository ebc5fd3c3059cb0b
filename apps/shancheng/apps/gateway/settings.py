"""The gateway's configuration (a TOML file; tests build it with keywords).

>>> s = GatewaySettings(data_dir="/srv/gw", node_urls=["http://127.0.0.1:8545"], genesis="genesis.json",
...                     org="hospital", sm2_key="k.pem", eth_key="k.json", password_file="pw",
...                     evidence_origin="district.example/log/hospital", public_url="http://127.0.0.1:8080")
>>> s.database_url
'sqlite:////srv/gw/gateway.db'
>>> s.session_secret_file.name, s.staff_keys_dir.name
('session-secret', 'staff')
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shancheng.sdk.client import GmTlsClientConfig
from shancheng.sdk.client.gmtls_http import GM_SCHEME
from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.files import read_password
from shancheng.sdk.gmtls import MODES, CertifiedKey
from shancheng.sdk.gmtls.front import CERTIFICATE_FILES, FILE_SETTINGS, TlsFrontSettings

from ..hj212.settings import Hj212Settings

__all__ = ["GatewaySettings", "NodeTlsSettings", "OidcSettings", "SettingsError"]

MAX_CONFIG_BYTES = 1 << 20


class SettingsError(InvalidInput):
    """The configuration file is missing, malformed or inconsistent."""


class OidcSettings(BaseModel):
    """OpenID Connect sign-in (the district's unified identity, 统一身份认证)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str = Field(min_length=1, max_length=500)
    client_id: str = Field(min_length=1, max_length=200)
    client_secret_file: Path
    role_claim: str = Field(default="shancheng_role", min_length=1, max_length=100)
    org_claim: str = Field(default="shancheng_org", min_length=1, max_length=100)
    scope: str = Field(default="openid profile", max_length=500)
    session_lifetime: float = Field(default=8 * 3600, gt=0, le=7 * 86400)

    def client_secret(self) -> str:
        """The client secret, read from its file (never kept in the configuration itself)."""
        return self.client_secret_file.read_text().strip()


class NodeTlsSettings(BaseModel):
    """How the gateway reaches ``https+gm://`` node URLs (a ``[node_tls]`` table): the SDK's
    :class:`~shancheng.sdk.client.GmTlsClientConfig` from files.  ``ca`` is the consortium CA; the member's client
    certificate (mutual authentication, which the nodes' fronts written by ``network init --gm-tls`` require) is
    ``sign_cert``/``sign_key`` and ``enc_cert``/``enc_key`` in TLCP, ``cert``/``key`` in RFC 8998, its keys encrypted
    with ``password_file`` (default: the organisation's).  ``crl``: refuse a revoked node.  ``server_name``: the name
    every node's certificate must carry (default: each URL's host)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: str = "tlcp"
    ca: Path
    sign_cert: Path | None = None
    sign_key: Path | None = None
    enc_cert: Path | None = None
    enc_key: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    crl: Path | None = None
    password_file: Path | None = None
    server_name: str | None = Field(default=None, min_length=1, max_length=253)

    @model_validator(mode="after")
    def _check(self) -> NodeTlsSettings:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode[:40]!r}")
        pairs = CERTIFICATE_FILES
        wrong = [n for m, names in pairs.items() if m != self.mode for n in names if getattr(self, n) is not None]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} do(es) not belong to mode {self.mode}")
        given = [n for n in pairs[self.mode] if getattr(self, n) is not None]
        if given and len(given) != len(pairs[self.mode]):
            raise ValueError(f"mode {self.mode} with a client certificate needs all of {', '.join(pairs[self.mode])}")
        for name in FILE_SETTINGS:
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file {str(path)[:300]}")
        return self

    def client_config(self, default_password_file: Path) -> GmTlsClientConfig:
        """The SDK's client settings, the keys decrypted (with ``password_file``, else ``default_password_file``)."""
        certificate: tuple[CertifiedKey, CertifiedKey] | CertifiedKey | None = None
        named = [getattr(self, name) for name in CERTIFICATE_FILES[self.mode]]
        files = [path for path in named if path is not None]
        if len(files) == len(named):  # a client certificate (else none: the validator refuses half a pair)
            password = read_password(str(self.password_file or default_password_file))
            pairs = [CertifiedKey.from_files(cert, key, password)
                     for cert, key in zip(files[::2], files[1::2], strict=True)]
            certificate = (pairs[0], pairs[1]) if self.mode == "tlcp" else pairs[0]
        return GmTlsClientConfig(ca=self.ca, mode=self.mode, certificate=certificate, crl=self.crl,
                                 server_name=self.server_name)


class GatewaySettings(BaseModel):
    """See the module docstring; every path may be relative to the configuration file's folder in TOML."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path
    database_url: str = Field(default="", max_length=4096)
    node_urls: list[str] = Field(min_length=1, max_length=32)
    genesis: Path
    org: str = Field(min_length=1, max_length=100)
    sm2_key: Path
    eth_key: Path
    password_file: Path
    evidence_origin: str = Field(min_length=1, max_length=255)
    session_secret_file: Path = Path()
    public_url: str = Field(default="http://127.0.0.1:8080", max_length=500)
    oidc: OidcSettings | None = None
    max_body_bytes: int = Field(default=1 << 20, ge=1024, le=1 << 30)
    audit_anchor_interval: float = Field(default=3600.0, gt=0)
    staff_keys_dir: Path = Path()
    signature_window: float = Field(default=300.0, gt=0, le=3600)
    batch_max_age: float = Field(default=1.0, gt=0, le=86400)
    #: unauthenticated API requests per source address: refill rate (per second) and burst; the number of sources
    #: remembered at once bounds the limiter's memory (see shancheng.apps.gateway.limits)
    unauthenticated_rate: float = Field(default=1.0, gt=0, le=10_000)
    unauthenticated_burst: int = Field(default=60, ge=1, le=1_000_000)
    unauthenticated_sources: int = Field(default=10_000, ge=1, le=1_000_000)
    #: the HJ 212 listener, None to run none
    hj212: Hj212Settings | None = None
    #: the GM TLS front (TLCP or RFC 8998, a ``[tls]`` table; see shancheng.sdk.gmtls.front), None to serve plain
    #: HTTP only (then on loopback, behind a certified GM gateway, or for development)
    tls: TlsFrontSettings | None = None
    #: how ``https+gm://`` node URLs are reached (client-side GM TLS, a ``[node_tls]`` table); required by such a
    #: URL, refused without one
    node_tls: NodeTlsSettings | None = None

    @field_validator("tls", mode="before")
    @classmethod
    def _tls(cls, value: Any) -> Any:
        if isinstance(value, dict):  # paths were made absolute by load(); keyword users pass absolute ones
            try:
                return TlsFrontSettings.from_toml(value, Path.cwd())
            except InvalidInput as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _defaults(self) -> GatewaySettings:
        if not self.database_url:
            object.__setattr__(self, "database_url", f"sqlite:///{self.data_dir / 'gateway.db'}")
        if self.session_secret_file == Path():
            object.__setattr__(self, "session_secret_file", self.data_dir / "session-secret")
        if self.staff_keys_dir == Path():
            object.__setattr__(self, "staff_keys_dir", self.data_dir / "staff")
        gm = [u for u in self.node_urls if u.startswith(f"{GM_SCHEME}://")]
        if gm and self.node_tls is None:
            raise ValueError(f"node URL {gm[0][:60]!r} is GM TLS: add a [node_tls] table (the CA, the client pair)")
        if self.node_tls is not None and not gm:
            raise ValueError(f"[node_tls] is set but no node URL is {GM_SCHEME}://: refusing to call nodes in plain HTTP")
        return self

    def node_tls_config(self) -> GmTlsClientConfig | None:
        """The SDK's GM TLS settings for the node URLs (the keys decrypted), None when ``[node_tls]`` is not set."""
        return None if self.node_tls is None else self.node_tls.client_config(self.password_file)

    @field_validator("node_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://", f"{GM_SCHEME}://")) or len(url) > 500:
                raise ValueError(f"node URL {url[:60]!r} is not an http://, https:// or {GM_SCHEME}:// URL")
        return urls

    @field_validator("public_url")
    @classmethod
    def _public(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError("public_url must be an http(s) URL")
        return url.rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        """Session cookies carry ``Secure`` when the gateway is served over https."""
        return self.public_url.startswith("https://")

    def password(self) -> bytes:
        """The organisation's key password (from ``password_file``; the trailing newline is dropped)."""
        return self.password_file.read_bytes().rstrip(b"\r\n")

    @classmethod
    def load(cls, path: str | Path) -> GatewaySettings:
        """Read a TOML file (``shancheng gateway init`` writes a commented one); relative paths are taken from the
        file's folder.

        Raises :class:`SettingsError` with one readable line."""
        path = Path(path)
        try:
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise SettingsError(f"{path}: larger than {MAX_CONFIG_BYTES} bytes")
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SettingsError(f"cannot read the configuration {path}: {exc.strerror}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise SettingsError(f"{path}: not valid TOML: {exc}") from None
        base = path.resolve().parent

        def resolve(value: Any) -> Any:
            return str(base / os.path.expanduser(value)) if isinstance(value, str) and value else value

        for key in ("data_dir", "genesis", "sm2_key", "eth_key", "password_file", "session_secret_file",
                    "staff_keys_dir"):
            if key in data:
                data[key] = resolve(data[key])
        if isinstance(data.get("tls"), dict):
            for key in FILE_SETTINGS:
                if key in data["tls"]:
                    data["tls"][key] = resolve(data["tls"][key])
        if isinstance(data.get("node_tls"), dict):
            for key in FILE_SETTINGS:
                if key in data["node_tls"]:
                    data["node_tls"][key] = resolve(data["node_tls"][key])
        if isinstance(data.get("oidc"), dict) and "client_secret_file" in data["oidc"]:
            data["oidc"]["client_secret_file"] = resolve(data["oidc"]["client_secret_file"])
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(file)"
            raise SettingsError(f"{path}: {where}: {first['msg']} ({exc.error_count()} error(s))") from None
