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

from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.gmtls.front import TlsFrontSettings

from ..hj212.settings import Hj212Settings

__all__ = ["GatewaySettings", "OidcSettings", "SettingsError"]

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
        return self

    @field_validator("node_urls")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not url.startswith(("http://", "https://")) or len(url) > 500:
                raise ValueError(f"node URL {url[:60]!r} is not an http(s) URL")
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
            for key in ("ca", "sign_cert", "sign_key", "enc_cert", "enc_key", "cert", "key", "crl", "password_file"):
                if key in data["tls"]:
                    data["tls"][key] = resolve(data["tls"][key])
        if isinstance(data.get("oidc"), dict) and "client_secret_file" in data["oidc"]:
            data["oidc"]["client_secret_file"] = resolve(data["oidc"]["client_secret_file"])
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(file)"
            raise SettingsError(f"{path}: {where}: {first['msg']} ({exc.error_count()} error(s))") from None
