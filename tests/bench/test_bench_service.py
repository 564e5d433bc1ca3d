"""The gRPC service against in-process evaluation, in the same run (`make bench`).

`bagalau serve` runs as its own process (plain text on loopback, metrics off, no hot reload) on
a rules folder holding org-development only: one server with the audit log off, one with an SQLite
audit log in a temporary folder (its writer is a third process). The client is another process
(service_client.py), so no two of them share an interpreter lock. Workloads, 500 items a batch:
org-development 2020 with every input (the engine benchmark's request), with the two supplied
values `personnel` and `it` (block only), and the 34 synthetic bodies of examples/ (central and
local, all items different). For each it measures:

- unary `Evaluate` latency, median and p99 over 1,000 calls made one at a time;
- `EvaluateBatch` throughput in items per second, batches sent one after another; with the audit
  log on, the clock stops only when the last record is written (no work left queued);
- the in-process rate: the same 500 items through `CompiledVersion.evaluate` in this process,
  three times per round (this test's pytest-benchmark timing).

The machine may be busy with other work, so the service and in-process measurements are
interleaved: 6 rounds of (about 1 s of batches to each server, then one in-process pass), and
the ratios are medians of the rounds' ratios. conftest.py prints them beside the targets of the service issue:
batch throughput at least 0.4 of the in-process rate, an audit log costing at most 20 % of
throughput. Everything is also in the benchmark's ``extra_info`` (and so in ``--benchmark-json``).

Under `make test` (benchmarks disabled) this is a quick correctness run: one server with the audit
log on, a few calls and one batch of 10 items per workload, checked against in-process results.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

import service_client
from dsl.decimals import format_decimal
from dsl.evaluate import EvalRequest
from dsl.registry import load_registry

ROOT = Path(__file__).resolve().parents[2]
CLIENT = Path(service_client.__file__).resolve()
BATCH_SIZE = 500
UNARY_CALLS = 1000  # one at a time: the p99 is the 10th slowest
SEGMENT_SECONDS = 1.0  # about how long each server is sent batches in a service segment
ROUNDS = 6  # service segments, each followed by an in-process round
IN_PROCESS_PASSES = 3  # over the 500 items, per in-process round
START_TIMEOUT = 60


def bench_enabled(config) -> bool:
    session = getattr(config, "_benchmarksession", None)
    return session is not None and not session.disabled


def bagalau() -> list[str]:
    script = Path(sys.executable).with_name("bagalau")
    return [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]


class ServerProcess:
    """`bagalau serve` on a free loopback port; its JSON log goes to a file."""

    def __init__(self, name: str, rules: Path, audit: str, tmp: Path):
        self.name = name
        self.log_path = tmp / f"{name}.log"
        self._log = self.log_path.open("w")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen(
            bagalau() + ["serve", "--address", "127.0.0.1:0", "--rules", str(rules), "--audit", audit, "--metrics-port", "0",
                         "--no-reload", "--grace", "5", "--log-format", "json"],
            cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log)
        self.address = ""

    def wait_serving(self) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for line in self.log_path.read_text().splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if entry.get("event") == "serving":
                    self.address = f"127.0.0.1:{entry['port']}"
                    return self.address
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"`bagalau serve` ({self.name}) did not start:\n{self.log_path.read_text()}")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


class ClientProcess:
    """service_client.py in its own process, answering one command at a time (see its docstring)."""

    def __init__(self, servers: dict[str, str], workload: str, batch_size: int):
        args = [sys.executable, str(CLIENT), "--workload", workload, "--batch-size", str(batch_size)]
        args += [f"--server={name}={address}" for name, address in servers.items()]
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._answer()

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, f"the client stopped (exit code {self.proc.wait()}); its errors are above"
        return json.loads(line)

    def run(self, op: str, **args) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        result = self._answer()
        assert result["problem_count"] == 0, result["problems"]
        return result

    def close(self) -> None:
        try:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench-rules") / "rules"
    shutil.copytree(ROOT / "rules" / "org-development", root / "org-development")
    return root


@pytest.fixture(scope="module")
def version(rules):
    return load_registry(rules).get(service_client.METHODOLOGY, service_client.VERSION)


@pytest.fixture(scope="module")
def servers(request, rules, tmp_path_factory):
    """{"off": address, "on": address}; only "on" when benchmarks are disabled (the quick run)."""
    tmp = tmp_path_factory.mktemp("bench-service")
    wanted = {"on": f"sqlite:///{tmp / 'audit.db'}"}
    if bench_enabled(request.config):
        wanted = {"off": "none", **wanted}
    procs = {name: ServerProcess(f"server-audit-{name}", rules, audit, tmp) for name, audit in wanted.items()}
    try:
        addresses = {name: p.wait_serving() for name, p in procs.items()}
        yield addresses
    finally:
        codes = {name: p.stop() for name, p in procs.items()}
    assert all(code == 0 for code in codes.values()), f"`bagalau serve` exit codes after SIGTERM: {codes}"


def in_process_requests(workload: str, count: int) -> list[EvalRequest]:
    """The very items the client sends, as the library takes them."""
    return [EvalRequest(subject_id, kind, inputs, only)
            for subject_id, kind, inputs, only in service_client.workload_items(workload, count)]


def _median(values) -> float:
    return statistics.median(values)


@pytest.mark.parametrize("workload", list(service_client.WORKLOADS))
def test_service(benchmark, servers, version, workload):
    quick = benchmark.disabled  # make test: a quick end-to-end check, not a measurement
    size = 10 if quick else BATCH_SIZE
    requests = in_process_requests(workload, size)
    expected = [[format_decimal(r.values["block"]), r.grades["block"]] for r in map(version.evaluate, requests)]
    client = ClientProcess(servers, workload, size)
    try:
        if quick:
            client.run("unary", server="on", calls=3, warmup=0)
            assert client.run("batch", server="on", batches=1, drain=True, report=True)["blocks"] == expected
            benchmark(lambda: [version.evaluate(r) for r in requests])
            return
        warm = {}
        for audit in ("off", "on"):  # results as in-process, then warm-up
            warm[audit] = client.run("batch", server=audit, batches=2, drain=audit == "on", report=True)
            assert warm[audit]["blocks"] == expected
        unary = {audit: client.run("unary", server=audit, calls=UNARY_CALLS) for audit in ("off", "on")}
        # Segments long enough that the audit log's last transaction (the wait to see everything
        # written) is a small part of them, as it is under sustained load.
        batches = max(3, round(SEGMENT_SECONDS / (warm["off"]["seconds"] / 2)))

        segments: list[dict] = []

        def service_segment():  # before each in-process round, untimed: the service, then the audit log
            segments.append({audit: client.run("batch", server=audit, batches=batches, drain=audit == "on")
                             for audit in ("off", "on")})

        def evaluate_all():
            for _ in range(IN_PROCESS_PASSES):
                for r in requests:
                    version.evaluate(r)

        benchmark.pedantic(evaluate_all, setup=service_segment, rounds=ROUNDS)
    finally:
        client.close()

    # Each in-process round ran right after a service segment: compare them pairwise, then take medians.
    in_process = [IN_PROCESS_PASSES * BATCH_SIZE / t for t in benchmark.stats.stats.data]
    off = [seg["off"]["items_per_s"] for seg in segments[:len(in_process)]]
    on = [seg["on"]["items_per_s"] for seg in segments[:len(in_process)]]
    benchmark.extra_info["service"] = {
        "workload": workload, "batch_size": BATCH_SIZE, "rounds": len(in_process), "segment_batches": batches,
        "unary_median_ms": unary["off"]["median_ms"], "unary_p99_ms": unary["off"]["p99_ms"],
        "unary_audit_median_ms": unary["on"]["median_ms"], "unary_audit_p99_ms": unary["on"]["p99_ms"],
        "batch_items_per_s": _median(off), "batch_audit_items_per_s": _median(on),
        "in_process_items_per_s": _median(in_process),
        "ratio": _median([o / i for o, i in zip(off, in_process)]),
        "audit_cost": _median([1 - a / o for a, o in zip(on, off)]),
        "audit_drain_ms": _median([seg["on"]["drain_seconds"] * 1000 for seg in segments]),
        "segments": segments,
    }
