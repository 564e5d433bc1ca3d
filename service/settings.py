"""Service settings: embedded defaults, then ``BAGALAU_*`` environment variables, then command-line flags.

Every setting is documented in ``docs/grpc.md``; the field names below are the
environment variable names without the ``BAGALAU_`` prefix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BAGALAU_", extra="forbid", validate_default=True)

    # ---------------------------------------------------------------- listening
    address: str = Field("127.0.0.1:50051", description="HOST:PORT to listen on; port 0 picks a free port")
    plaintext: bool = Field(False, description="serve without TLS on a non-loopback address (loopback needs no asking)")
    tls_cert: Path | None = Field(None, description="PEM certificate chain of the server")
    tls_key: Path | None = Field(None, description="PEM private key of the server")
    tls_client_ca: Path | None = Field(None, description="PEM CA bundle: when set, clients must present a certificate it signed (mutual TLS)")

    # ---------------------------------------------------------------- what is served
    rules: Path = Field(Path("rules"), description="rules folder, relative to the current directory")
    reload: bool = Field(True, description="watch the rules folder and hot-reload changes")
    reload_debounce_ms: int = Field(300, ge=10, description="wait this long for a burst of file changes to settle")
    reload_force_polling: bool = Field(False, description="poll the folder instead of using inotify")

    # ---------------------------------------------------------------- audit log
    audit: str = Field("sqlite:///var/audit.db", description="sqlite:///PATH, postgresql://…, or none")
    audit_batch_size: int = Field(500, ge=1, description="records written per transaction, at most")
    audit_queue_size: int = Field(100_000, ge=1, description="records waiting to be written before scoring waits")

    # ---------------------------------------------------------------- limits
    max_workers: int = Field(16, ge=1, description="threads serving calls; each open stream holds one")
    max_message_bytes: int = Field(8 * 1024 * 1024, ge=1024, description="largest request or response message")
    max_batch_size: int = Field(1000, ge=1, description="most items in one EvaluateBatch or stream message")
    grace_seconds: float = Field(10.0, ge=0, description="on SIGTERM, how long in-flight calls may take to finish")

    # ---------------------------------------------------------------- observability
    metrics_port: int = Field(9464, ge=0, le=65535, description="Prometheus metrics HTTP port; 0 turns metrics off")
    metrics_address: str = Field("127.0.0.1", description="interface the metrics port listens on")
    log_format: Literal["auto", "json", "console"] = Field("auto", description="auto: console on a terminal, JSON otherwise")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info")

    @field_validator("address")
    @classmethod
    def _address_has_port(cls, v: str) -> str:
        host, sep, port = v.rpartition(":")
        if not sep or not host or not port.isdigit() or int(port) > 65535:
            raise ValueError(f"{v!r} is not HOST:PORT (e.g. 127.0.0.1:50051 or [::]:50051)")
        return v

    @field_validator("audit")
    @classmethod
    def _audit_url(cls, v: str) -> str:
        if v.lower() in ("none", "off", ""):
            return "none"
        if not (v.startswith("sqlite:///") or v.startswith("postgresql://") or v.startswith("postgres://")):
            raise ValueError(f"{v!r}: expected sqlite:///PATH, postgresql://USER@HOST/DB or none")
        return v

    @model_validator(mode="after")
    def _tls_consistent(self) -> "Settings":
        if self.audit_queue_size < self.max_batch_size:
            raise ValueError("audit_queue_size must be at least max_batch_size")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise ValueError("tls_client_ca (mutual TLS) needs tls_cert and tls_key too")
        if self.tls_cert is not None and self.plaintext:
            raise ValueError("plaintext and a TLS certificate were both given; choose one")
        if self.tls_cert is None and not self.plaintext and not self.loopback:
            raise ValueError(f"{self.address} is reachable from other machines and no TLS certificate was given: set "
                             "tls_cert and tls_key (and tls_client_ca for mutual TLS), or ask for plain text explicitly "
                             "(--plaintext, BAGALAU_PLAINTEXT=true)")
        return self

    @property
    def loopback(self) -> bool:
        """Listening on this machine only: plain text is then allowed without asking (``make run``)."""
        host = self.address.rpartition(":")[0].strip("[]").lower()
        return host in ("localhost", "::1") or host.startswith("127.")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def mutual_tls(self) -> bool:
        return self.tls_client_ca is not None

    def rules_dir(self) -> Path:
        return self.rules if self.rules.is_absolute() else (Path.cwd() / self.rules)
