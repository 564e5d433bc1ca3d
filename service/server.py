"""The gRPC server: built from settings, started, and stopped gracefully.

``ScoringServer`` wires the pieces (rule set and its watcher, audit writer, servicer, health,
reflection, metrics endpoint); ``serve`` runs it until SIGTERM or SIGINT. On the signal, health
turns NOT_SERVING for every service, new calls are refused, calls in flight get
``grace_seconds`` to finish, then the audit queue is written out.
"""

from __future__ import annotations

import signal
import threading
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from dsl.errors import CompileFailed
from dsl.registry import Registry

from . import log as logging_setup
from .audit import AuditError, AuditWriter, _redact, open_store
from .calls import CallInterceptor
from .log import get_logger
from .metrics import MetricsServer
from .protos import SERVICE_NAME, pb_grpc
from .ruleset import RuleSet
from .servicer import RAW_REQUEST_METHODS, ScoringServicer
from .settings import Settings

log = get_logger("bagalau.server")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_RULES = 0, 1, 2, 3


class StartupError(Exception):
    """The server cannot start (a certificate cannot be read, the address is taken)."""


def _read(path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise StartupError(f"cannot read the {what} {path}: {e.strerror}") from None


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    if not settings.tls:
        return None
    key = _read(settings.tls_key, "TLS key")
    cert = _read(settings.tls_cert, "TLS certificate")
    ca = _read(settings.tls_client_ca, "client CA bundle") if settings.tls_client_ca else None
    return grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=ca is not None)


class _Handlers:
    """Stands in for a server to collect the method handlers the generated code registers."""

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self.service, self.handlers = service, handlers


def add_servicer(servicer: ScoringServicer, server: grpc.Server) -> None:
    """The generated registration, except that the evaluation methods get their requests as the
    bytes received and return their responses encoded (no deserializer, no serializer): the
    servicer reads requests as views, and the audit log keeps both as they are, instead of
    encoding them again."""
    collected = _Handlers()
    pb_grpc.add_ScoringServiceServicer_to_server(servicer, collected)
    handlers = dict(collected.handlers)
    for name in RAW_REQUEST_METHODS:
        handlers[name] = handlers[name]._replace(request_deserializer=None, response_serializer=None)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(collected.service, handlers),))
    server.add_registered_method_handlers(collected.service, handlers)


class ScoringServer:
    def __init__(self, settings: Settings, registry: Registry | None = None):
        """``registry``: the rules folder already compiled (tools and tests); else it is compiled here."""
        self.settings = settings
        credentials = server_credentials(settings)  # fail early, before anything starts
        self.rules = RuleSet(settings.rules_dir(), registry)  # CompileFailed: nothing to serve
        self.audit = None
        if settings.audit != "none":
            self.audit = AuditWriter(open_store(settings.audit), batch_size=settings.audit_batch_size,
                                     queue_size=settings.audit_queue_size, log_format=settings.log_format,
                                     log_level=settings.log_level)
        self.health = health.HealthServicer(experimental_non_blocking=True,
                                            experimental_thread_pool=futures.ThreadPoolExecutor(max_workers=1))
        self.server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.max_workers, thread_name_prefix="bagalau-rpc"),
            interceptors=[CallInterceptor()],
            options=[
                ("grpc.max_receive_message_length", settings.max_message_bytes),
                ("grpc.max_send_message_length", settings.max_message_bytes),
                ("grpc.so_reuseport", 0),  # a taken port is an error, not a shared one
            ],
        )
        self.servicer = ScoringServicer(self.rules, self.audit, settings.max_batch_size)
        add_servicer(self.servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), self.server)
        try:
            if credentials is None:
                self.port = self.server.add_insecure_port(settings.address)
            else:
                self.port = self.server.add_secure_port(settings.address, credentials)
        except RuntimeError as e:
            self._close_resources()
            raise StartupError(f"cannot listen on {settings.address}: {e}") from None
        if not self.port:
            self._close_resources()
            raise StartupError(f"cannot listen on {settings.address}")
        self.metrics: MetricsServer | None = None
        self._stopped = threading.Event()

    @property
    def address(self) -> str:
        host = self.settings.address.rpartition(":")[0]
        return f"{host}:{self.port}"

    def start(self) -> "ScoringServer":
        self.server.start()
        if self.settings.metrics_port:
            try:
                self.metrics = MetricsServer(self.settings.metrics_address, self.settings.metrics_port)
            except OSError as e:
                self.server.stop(None)
                self._close_resources()
                raise StartupError(f"cannot serve metrics on {self.settings.metrics_address}:{self.settings.metrics_port}: "
                                   f"{e.strerror}") from None
        if self.settings.reload:
            self.rules.watch(self.settings.reload_debounce_ms, self.settings.reload_force_polling)
        self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        log.info("serving", address=self.address, port=self.port, tls=self.settings.tls, mutual_tls=self.settings.mutual_tls,
                 rules=str(self.rules.root), content_hash=self.rules.current.content_hash,
                 audit=_redact(self.settings.audit), metrics_port=self.metrics.port if self.metrics else 0,
                 hot_reload=self.settings.reload)
        return self

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop: NOT_SERVING, refuse new calls, let calls in flight finish, flush the audit log."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.settings.grace_seconds if grace is None else grace
        log.info("stopping", grace_seconds=grace)
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self._close_resources()
        log.info("stopped")

    def _close_resources(self) -> None:
        self.rules.stop()
        if self.audit is not None:
            self.audit.close()
        if getattr(self, "metrics", None) is not None:
            self.metrics.stop()

    def __enter__(self) -> "ScoringServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop(grace=0)


def serve(settings: Settings) -> int:
    """Run the service until SIGTERM/SIGINT. Returns the process exit code."""
    logging_setup.configure(settings.log_format, settings.log_level)
    try:
        server = ScoringServer(settings).start()
    except CompileFailed as e:
        errors = [d for d in e.diagnostics if d.severity == "error"]
        log.error("the rules do not compile; not starting", rules=str(settings.rules_dir()),
                  diagnostics=[d.format() for d in errors[:50]], errors=len(errors))
        return EXIT_RULES
    except (StartupError, AuditError) as e:
        log.error("cannot start", reason=str(e))
        return EXIT_USAGE
    stop = threading.Event()
    signals = []

    def on_signal(signum, _frame):
        signals.append(signum)
        if len(signals) > 1:  # a second signal: stop now
            log.warning("second signal: stopping without waiting for calls in flight")
            server.server.stop(0)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(0.5):
            pass
        log.info("signal received", signal=signal.Signals(signals[0]).name)
        server.stop()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return EXIT_OK
