"""Prometheus metrics, exposed over HTTP on ``metrics_port`` (prometheus_client's own server)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RPC_CALLS = Counter("bagalau_rpc_calls_total", "gRPC calls handled, by method and status code", ["method", "code"])
RPC_LATENCY = Histogram(
    "bagalau_rpc_latency_seconds", "Time to handle a gRPC call, by method", ["method"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVALUATIONS = Counter("bagalau_evaluations_total", "Subjects scored, by methodology, version and outcome",
                      ["methodology", "version", "outcome"])
RELOADS = Counter("bagalau_rule_reloads_total", "Rules-folder reloads, by outcome (applied, refused, unchanged)", ["outcome"])
RULES_INFO = Gauge("bagalau_rules_info", "The rule set being served (value 1), labelled with its content hash", ["content_hash"])
AUDIT_WRITTEN = Counter("bagalau_audit_records_written_total", "Evaluation records written to the audit log")
AUDIT_ERRORS = Counter("bagalau_audit_write_errors_total", "Failed audit-log write attempts (each batch is retried)")
AUDIT_PENDING = Gauge("bagalau_audit_pending_records", "Evaluation records waiting to be written to the audit log")


def set_rules_served(content_hash: str) -> None:
    RULES_INFO.clear()
    RULES_INFO.labels(content_hash=content_hash).set(1)


class MetricsServer:
    """The HTTP endpoint Prometheus scrapes (``/metrics``)."""

    def __init__(self, address: str, port: int):
        self._httpd, self._thread = start_http_server(port, addr=address)
        self.port = self._httpd.server_port

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
