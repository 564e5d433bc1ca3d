"""Where a batch item's time goes in the service, phase by phase, in one process (no gRPC):

    .venv/bin/python tests/bench/service_phases.py [WORKLOAD ...]

For each workload of service_client.py (500 items, org-development 2020), the best of 5 runs of
each phase in microseconds per item: reading the batch message, turning items into library
requests (convert.evaluation_from_pb), scoring them (CompiledVersion.evaluate, what the
in-process benchmark times), building the response items (convert.result_to_pb), encoding the
response, and the servicer's whole batch path (ScoringServicer._batch, audit log off). A tool for
performance work, not a test: `make bench` gives the measurements that count.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parents[1]), str(HERE)]

import service_client  # noqa: E402
from dsl.registry import load_registry  # noqa: E402
from service import convert  # noqa: E402
from service.protos import pb  # noqa: E402
from service.ruleset import RuleSet  # noqa: E402
from service.servicer import ScoringServicer  # noqa: E402
from service.views import EvaluateBatchRequestView  # noqa: E402

ITEMS = 500


class _Context:
    """The little of a grpc.ServicerContext that a batch reads."""

    def is_active(self):
        return True

    def time_remaining(self):
        return None


def _best(fn, repeat: int = 5, number: int = 20) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - started) / number)
    return best / ITEMS * 1e6


def phases(workload: str, rules: Path) -> dict[str, float]:
    registry = load_registry(rules)
    version = registry.get(service_client.METHODOLOGY, service_client.VERSION)
    items = service_client.workload_items(workload, ITEMS)
    raw = pb.EvaluateBatchRequest(items=[service_client.request_for(*item) for item in items]).SerializeToString()
    views = list(EvaluateBatchRequestView.FromString(raw).items)
    requests = [convert.evaluation_from_pb(v)[1] for v in views]
    results = [version.evaluate(r) for r in requests]

    def respond():
        out = pb.EvaluateBatchResponse()
        add = out.items.add
        for result in results:
            convert.result_to_pb(result, "request-id", "", "", add())
        return out

    response = respond()
    servicer = ScoringServicer(RuleSet(rules, registry), None)
    return {
        "read the batch message": _best(lambda: EvaluateBatchRequestView.FromString(raw)),
        "items to library requests": _best(lambda: [convert.evaluation_from_pb(v) for v in views]),
        "scoring (the in-process work)": _best(lambda: [version.evaluate(r) for r in requests]),
        "results to response items": _best(respond),
        "encode the response": _best(response.SerializeToString),
        "whole batch path": _best(lambda: servicer._batch(raw, _Context())),
    }


def main(argv: list[str]) -> int:
    from service.log import configure

    configure("console", "warning")
    rules = HERE.parents[1] / "rules"
    for workload in argv or list(service_client.WORKLOADS):
        print(f"{workload} (µs per item, best of 5):")
        for name, micros in phases(workload, rules).items():
            print(f"  {name:32s} {micros:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
