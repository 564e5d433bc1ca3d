"""`bagalau serve` as a process: SIGTERM during a stream turns health NOT_SERVING, lets the stream
finish, writes out the audit log and exits 0."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.audit import open_store, verify
from service.protos import SERVICE_NAME, pb, pb_grpc
from service_support import acceptance_request, assert_acceptance

WAIT = 60  # seconds: upper bounds for things to happen, not timing assertions


def bagalau() -> list[str]:
    script = Path(sys.executable).with_name("bagalau")
    return [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]


class ServerProcess:
    def __init__(self, args: list[str], cwd: Path):
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(bagalau() + args, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.events: queue.Queue = queue.Queue()
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            try:
                self.events.put(json.loads(line))
            except ValueError:
                pass
        self.events.put(None)

    def wait_for(self, event: str) -> dict:
        while True:
            try:
                entry = self.events.get(timeout=WAIT)
            except queue.Empty:
                raise AssertionError(f"no {event!r} log line within {WAIT} s:\n{''.join(self.lines)}") from None
            if entry is None:
                raise AssertionError(f"the server exited before logging {event!r}:\n{''.join(self.lines)}")
            if entry.get("event") == event:
                return entry


def test_sigterm_during_a_stream(tmp_path, small_rules):
    audit = f"sqlite:///{tmp_path / 'audit.db'}"
    server = ServerProcess(["serve", "--address", "127.0.0.1:0", "--rules", str(small_rules), "--audit", audit,
                            "--metrics-port", "0", "--grace", "30", "--log-format", "json"], cwd=tmp_path)
    try:
        port = server.wait_for("serving")["port"]
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=SERVICE_NAME))
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

            outbox: queue.Queue = queue.Queue()
            stream = pb_grpc.ScoringServiceStub(channel).EvaluateStream(iter(outbox.get, None))
            outbox.put(pb.EvaluateBatchRequest(items=[acceptance_request("before")]))
            assert_acceptance(next(stream).items[0])

            server.proc.send_signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
            server.wait_for("stopping")

            # the stream was in flight: it is still served during the grace period
            outbox.put(pb.EvaluateBatchRequest(items=[acceptance_request("after")]))
            after = next(stream).items[0]
            assert_acceptance(after)
            assert after.request_id == "after"
            outbox.put(None)  # the client ends the stream; the call completes normally
            assert list(stream) == []
            assert stream.code() == grpc.StatusCode.OK

        assert server.proc.wait(timeout=WAIT) == 0
        server.wait_for("stopped")
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
    store = open_store(audit)
    report = verify(store)
    assert report.ok and report.records == 2, "the audit queue is written out before the process exits"
    assert {r.request_id for r in store.scan()} == {"before", "after"}


@pytest.mark.parametrize("args, code, message", [
    (["--address", "nonsense"], 2, "HOST:PORT"),
    (["--address", "0.0.0.0:0"], 2, "no TLS certificate"),
    (["--tls-cert", "x.pem"], 2, "tls_cert and tls_key"),
])
def test_serve_refuses_bad_settings(tmp_path, args, code, message):
    done = subprocess.run(bagalau() + ["serve", *args], cwd=tmp_path, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == code
    assert message in done.stderr


def test_serve_refuses_broken_rules(tmp_path, small_rules):
    (small_rules / "demo" / "1.bgl").write_text("methodology demo version \"1\"\n  nonsense\n", encoding="utf-8")
    done = subprocess.run(bagalau() + ["serve", "--rules", str(small_rules), "--address", "127.0.0.1:0", "--audit", "none",
                                       "--metrics-port", "0", "--log-format", "json"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=WAIT)
    assert done.returncode == 3
    entry = next(json.loads(line) for line in done.stderr.splitlines() if "do not compile" in line)
    assert any("E100" in d for d in entry["diagnostics"])
