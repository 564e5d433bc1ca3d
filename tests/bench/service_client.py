"""The benchmark's gRPC client, run as its own process by test_bench_service.py.

    python service_client.py --workload NAME --server off=HOST:PORT --server on=HOST:PORT

It builds the workload's requests once, then reads commands from standard input, one JSON object
a line, runs each against the named server and answers with one JSON line on standard output:

- ``{"op": "unary", "server": "off", "calls": 1000, "warmup": 20}``: ``Evaluate`` calls one at a
  time (items in turn); latency median and p99 in ms.
- ``{"op": "batch", "server": "on", "batches": 3, "drain": true, "report": false}``: the same
  ``EvaluateBatch`` request (``--batch-size`` items) sent ``batches`` times, one call after the
  other; items per second. ``drain`` (a server with the audit log on): the clock stops only when
  the last evaluation is written to the audit log (``GetEvaluation`` gives it a chain
  ``sequence``), so the rate counts the audit writer's work instead of leaving it queued.
  ``report``: also return the ``block`` value and grade of every item of the first response.
- ``{"op": "quit"}``.

Requests are built before the clock starts. A unary call's time includes the client's encoding
of the request and decoding of the response, as for any client. Batches are sent encoded once
(the same bytes each time) and their responses decoded after the clock stops, so that the
throughput is the service's own and not this client's protobuf work. Every response is checked
(every item scored, with a ``block`` value).

The workloads are defined here and imported by the test, which scores the very same items
in-process for the comparison.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

import grpc  # noqa: E402

from dsl import decimals  # noqa: E402
from service.convert import python_to_value  # noqa: E402
from service.protos import pb, pb_grpc  # noqa: E402

METHODOLOGY, VERSION = "org-development", "2020"

# One central body, every input of org-development 2020: also the in-process engine benchmark's input.
FULL_INPUTS = {
    "leaders_left": 1, "staff_left": 6, "leaders_avg": 10, "staff_avg": 90, "due_advanced": 10, "trained_advanced": 9,
    "due_retraining": 2, "retrained": 2, "stability": 4, "exit_interview": 5, "gender_mix": 3, "staff_quality": 4,
    "rationing": 8, "satisfaction": 7, "management_practice": 4, "strategic_planning": 1, "e_kyzmet": 2,
    "competition_transparency": 8, "meritocracy_principles": 7, "career_growth": 6, "incentive_transparency": 7,
    "ethics": 8, "portal_filling": 20, "integration": 18, "systems": [{"actuality": 0.9}, {"actuality": 1}],
    "functions_total": 91, "automated_own": 9,
}
SUPPLIED_INPUTS = {"personnel": 87.72, "it": 97.98}
SUBJECTS = ROOT / "examples" / "org-development-subjects.jsonl"


def _same(inputs: dict, only: list[str] | None, kind: str = "central"):
    def make(count: int) -> list[tuple[str, str, dict, list[str] | None]]:
        raw = json.dumps(inputs)
        return [(f"bench-{i:05d}", kind, decimals.loads(raw), only) for i in range(count)]
    return make


def _subjects(count: int) -> list[tuple[str, str, dict, list[str] | None]]:
    """The synthetic subjects of examples/, central and local bodies, every input; cycled, each
    copy's average headcounts moved by 0.01 per round, so that no two items are the same."""
    rows = [decimals.loads(line) for line in SUBJECTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = []
    for i in range(count):
        row = rows[i % len(rows)]
        inputs = copy.deepcopy(row["inputs"])
        shift = Decimal(i // len(rows)) / 100
        for name in ("leaders_avg", "staff_avg"):
            inputs[name] += shift
        out.append((f"{row['subject']['id']}-{i:05d}", row["subject"]["kind"], inputs, None))
    return out


# name -> items(count): [(subject id, subject kind, inputs as the library takes them, only)]
WORKLOADS = {
    "od2020_full": _same(FULL_INPUTS, None),  # the engine benchmark's request, every value
    "od2020_supplied": _same(SUPPLIED_INPUTS, ["block"]),  # personnel and it supplied: block only
    "od2020_subjects": _subjects,  # 34 synthetic bodies, all different
}


def workload_items(name: str, count: int):
    return WORKLOADS[name](count)


def request_for(subject_id: str, kind: str, inputs: dict, only: list[str] | None) -> pb.EvaluateRequest:
    return pb.EvaluateRequest(request_id=subject_id, methodology=METHODOLOGY, version=VERSION,
                              subject=pb.Subject(id=subject_id, kind=kind),
                              inputs={k: python_to_value(v) for k, v in inputs.items()}, only=only or [])


def _problem(response: pb.EvaluateResponse) -> str | None:
    if response.HasField("error"):
        return f"{response.request_id}: {response.error.message}"
    if "block" not in response.values:
        return f"{response.request_id}: no block value"
    return None


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    index = max(0, min(len(sorted_values) - 1, int(round(q * len(sorted_values) + 0.5)) - 1))
    return sorted_values[index]


class Client:
    def __init__(self, servers: dict[str, str], workload: str, batch_size: int):
        self.channels = {name: grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 64 << 20),
                                                                       ("grpc.max_send_message_length", 64 << 20)])
                         for name, address in servers.items()}
        for channel in self.channels.values():
            grpc.channel_ready_future(channel).result(timeout=30)
        self.stubs = {name: pb_grpc.ScoringServiceStub(channel) for name, channel in self.channels.items()}
        # EvaluateBatch with the request encoded once and the responses decoded after the clock
        # stops: the throughput measured is the service's, not this client's protobuf work.
        self.raw_batch = {name: channel.unary_unary("/bagalau.v1.ScoringService/EvaluateBatch")
                          for name, channel in self.channels.items()}
        self.items = [request_for(*item) for item in workload_items(workload, batch_size)]
        self.batch = pb.EvaluateBatchRequest(items=self.items)
        self.batch_bytes = self.batch.SerializeToString()

    def unary(self, server: str, calls: int, warmup: int = 20) -> dict:
        stub, items = self.stubs[server], self.items
        times: list[float] = []
        responses = []
        for n in range(calls + warmup):
            request = items[n % len(items)]
            started = time.perf_counter()
            response = stub.Evaluate(request, timeout=30)
            elapsed = time.perf_counter() - started
            if n >= warmup:
                times.append(elapsed)
            responses.append(response)
        problems = [p for p in map(_problem, responses) if p]
        times.sort()
        return {"calls": len(times), "median_ms": statistics.median(times) * 1000, "p99_ms": _percentile(times, 0.99) * 1000,
                "mean_ms": statistics.fmean(times) * 1000, "problems": problems[:5], "problem_count": len(problems)}

    def _wait_written(self, stub, evaluation_id: str, timeout: float = 120) -> None:
        """Until the audit log has written ``evaluation_id`` (records are written in order)."""
        deadline = time.monotonic() + timeout
        request = pb.GetEvaluationRequest(evaluation_id=evaluation_id)
        while stub.GetEvaluation(request, timeout=30).evaluation.sequence == 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"evaluation {evaluation_id} not written to the audit log within {timeout} s")
            time.sleep(0.002)

    def batch_run(self, server: str, batches: int, drain: bool = False, report: bool = False) -> dict:
        stub, call, request, data = self.stubs[server], self.raw_batch[server], self.batch, self.batch_bytes
        encoded: list[bytes] = []
        started = time.perf_counter()
        for _ in range(batches):
            encoded.append(call(data, timeout=120))
        calls_done = time.perf_counter()
        last = pb.EvaluateBatchResponse.FromString(encoded[-1]) if encoded else None
        last_id = last.items[-1].evaluation_id if last is not None and last.items else ""
        problems: list[str] = []
        if drain:
            if last_id:
                self._wait_written(stub, last_id)
            else:
                problems.append("no evaluation_id returned: is the audit log on?")
        elapsed = time.perf_counter() - started
        responses = [pb.EvaluateBatchResponse.FromString(b) for b in encoded]
        for response in responses:
            if len(response.items) != len(request.items):
                problems.append(f"{len(response.items)} items back for {len(request.items)}")
            problems.extend(p for p in map(_problem, response.items) if p)
        items = len(request.items) * batches
        out = {"batches": batches, "items": items, "seconds": elapsed, "items_per_s": items / elapsed,
               "calls_seconds": calls_done - started, "drain_seconds": elapsed - (calls_done - started),
               "problems": problems[:5], "problem_count": len(problems)}
        if report and responses:
            out["blocks"] = [[r.values.get("block", ""), r.grades.get("block", "")] for r in responses[0].items]
        return out

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workload", choices=sorted(WORKLOADS), required=True)
    p.add_argument("--server", action="append", required=True, metavar="NAME=HOST:PORT",
                   help="a plain-text server, named for the commands")
    p.add_argument("--batch-size", type=int, default=500, metavar="N")
    args = p.parse_args(argv)
    client = Client(dict(s.split("=", 1) for s in args.server), args.workload, args.batch_size)
    print(json.dumps({"ready": True}), flush=True)
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            command = json.loads(line)
            op = command.pop("op")
            if op == "quit":
                break
            result = client.unary(**command) if op == "unary" else client.batch_run(**command)
            print(json.dumps(result), flush=True)
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
