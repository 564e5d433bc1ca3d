"""Hot reload of the rules folder: a good change is swapped in, a broken one refused."""

from __future__ import annotations

import os

import pytest
from structlog.testing import capture_logs

from service.protos import pb, pb_grpc
from service_support import DEMO_RULES, acceptance_request, assert_acceptance, channel_to

WAIT = 30  # seconds: an upper bound for a reload to happen, not a timing assertion


def write_atomically(path, text: str) -> None:
    """Editors and deploy tools replace files whole; a half-written file is not a change to judge."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def wait_for_reload(server, after: int, outcome: str) -> None:
    """Wait until a reload attempt after the ``after``-th one ends with ``outcome``."""
    rules = server.rules
    seen = after
    while True:
        assert rules.wait_for_attempts(seen + 1, WAIT), f"no reload within {WAIT} s (last: {rules.last_outcome})"
        seen = rules.attempts
        if rules.last_outcome == outcome:
            return


def demo_request(a: str) -> pb.EvaluateRequest:
    return pb.EvaluateRequest(methodology="demo", version="1", subject=pb.Subject(kind="central"),
                              inputs={"a": pb.Value(decimal=a)})


def test_good_change_is_picked_up_and_broken_change_refused(start_server, small_rules):
    server = start_server(registry=None, rules=small_rules, reload=True, reload_debounce_ms=50)
    with channel_to(server) as channel:
        stub = pb_grpc.ScoringServiceStub(channel)
        first = stub.ListMethodologies(pb.ListMethodologiesRequest())
        assert {m.name for m in first.methodologies} == {"demo", "org-development"}
        assert stub.Evaluate(demo_request("7")).values["total"] == "7"

        # a good change: a second demo version, and demo 1 now doubles its input
        attempts = server.rules.attempts
        write_atomically(small_rules / "demo" / "1.bgl", DEMO_RULES.replace("max 10 = a", "max 20 = 2 * a"))
        wait_for_reload(server, attempts, "applied")
        second = stub.ListMethodologies(pb.ListMethodologiesRequest())
        assert second.content_hash != first.content_hash
        assert stub.Evaluate(demo_request("7")).values["total"] == "14"
        assert_acceptance(stub.Evaluate(acceptance_request()))

        # a broken change: refused, diagnostics logged, the last good set keeps serving
        attempts = server.rules.attempts
        with capture_logs() as logs:
            write_atomically(small_rules / "demo" / "1.bgl", DEMO_RULES.replace("= a", "= a + missing_name"))
            wait_for_reload(server, attempts, "refused")
        refused = [e for e in logs if e["event"].startswith("rules change refused")]
        assert refused and refused[0]["content_hash"] == second.content_hash
        assert any("E200" in d and "missing_name" in d for d in refused[0]["diagnostics"])
        third = stub.ListMethodologies(pb.ListMethodologiesRequest())
        assert third.content_hash == second.content_hash
        assert stub.Evaluate(demo_request("7")).values["total"] == "14"
        assert_acceptance(stub.Evaluate(acceptance_request()))

        # a new file that does not parse is refused too
        attempts = server.rules.attempts
        write_atomically(small_rules / "demo" / "2.bgl", "methodology demo version \"2\"\n  this is not a rule file\n")
        wait_for_reload(server, attempts, "refused")
        assert stub.ListMethodologies(pb.ListMethodologiesRequest()).content_hash == second.content_hash

        # fixing it is picked up again
        attempts = server.rules.attempts
        (small_rules / "demo" / "2.bgl").unlink()
        write_atomically(small_rules / "demo" / "1.bgl", DEMO_RULES)
        wait_for_reload(server, attempts, "applied")
        assert stub.Evaluate(demo_request("7")).values["total"] == "7"


def test_a_call_sees_one_rule_set(start_server, small_rules):
    """A batch is scored with the registry it started with, even if a reload lands meanwhile."""
    server = start_server(registry=None, rules=small_rules)
    old = server.rules.current
    write_atomically(small_rules / "demo" / "1.bgl", DEMO_RULES.replace("max 10 = a", "max 20 = 2 * a"))
    assert server.rules.reload() == "applied"
    assert server.rules.current is not old
    assert server.rules.reload() == "unchanged"
    with channel_to(server) as channel:
        stub = pb_grpc.ScoringServiceStub(channel)
        assert stub.Evaluate(demo_request("3")).values["total"] == "6"


def test_server_does_not_start_on_broken_rules(tmp_path, small_rules):
    from dsl.errors import CompileFailed

    from service.server import ScoringServer
    from service_support import settings_for

    (small_rules / "demo" / "1.bgl").write_text(DEMO_RULES + "\nscore total = 1\n", encoding="utf-8")
    with pytest.raises(CompileFailed):
        ScoringServer(settings_for(tmp_path, rules=small_rules))
