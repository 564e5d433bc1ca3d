"""Every RPC of a real server, its successes and its error paths."""

from __future__ import annotations

import urllib.request

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from grpc_status import rpc_status

from service.protos import SERVICE_NAME, pb, pb_grpc

from service_support import DEMO_RULES, RULES, acceptance_request, assert_acceptance, channel_to


def bad_request_of(status) -> dict[str, str]:
    """field -> description from the google.rpc.BadRequest in a status's details."""
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            return {v.field: v.description for v in br.field_violations}
    raise AssertionError(f"no BadRequest in {status}")


def rich_status(err: grpc.RpcError):
    status = rpc_status.from_call(err)
    assert status is not None, "the error carries no google.rpc.Status"
    return status


# ------------------------------------------------------------------------------ acceptance


def test_evaluate_acceptance(stub):
    response, call = stub.Evaluate.with_call(acceptance_request(), metadata=(("x-request-id", "trace-42"),))
    assert_acceptance(response)
    assert response.request_id == "justice-2019"
    assert response.subject.id == "ministry-of-justice" and response.subject.kind == "central"
    assert sorted(response.supplied) == ["it", "personnel"]
    assert response.content_hash.startswith("sha256:")
    assert response.evaluation_id
    assert ("x-request-id", "trace-42") in tuple(call.initial_metadata())


def test_evaluate_batch_acceptance(stub):
    response = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[acceptance_request(f"r{i}") for i in range(3)]))
    assert [item.request_id for item in response.items] == ["r0", "r1", "r2"]
    for item in response.items:
        assert_acceptance(item)
    assert len({item.evaluation_id for item in response.items}) == 3


def test_evaluate_stream_acceptance(stub):
    batches = [pb.EvaluateBatchRequest(items=[acceptance_request(f"m{n}-{i}") for i in range(2)]) for n in range(3)]
    responses = list(stub.EvaluateStream(iter(batches)))
    assert len(responses) == 3
    assert [[i.request_id for i in r.items] for r in responses] == [[f"m{n}-0", f"m{n}-1"] for n in range(3)]
    for r in responses:
        for item in r.items:
            assert_acceptance(item)


def test_evaluate_by_date_uses_the_version_in_force(stub):
    request = acceptance_request(version="")
    request.as_of.year, request.as_of.month, request.as_of.day = 2020, 6, 1
    response = stub.Evaluate(request)
    assert_acceptance(response)


def test_explanation(stub):
    response = stub.Evaluate(acceptance_request(explain=True, language="en"))
    by_name = {e.name: e for e in response.explanation}
    assert set(by_name) == {"personnel", "it", "block"}
    block = by_name["block"]
    assert block.value == "92.9" and block.label == "Organizational development"
    assert block.substituted == "weighted(0.5 * 87.72, 0.5 * 97.98)"
    assert "half-up" in block.detail and block.grade == "high"
    assert block.file == "org-development/2020.bgl", "paths are relative to the rules folder"
    assert by_name["personnel"].supplied


def test_record_and_list_inputs(stub):
    """A list of records and exact decimals, through the whole message path."""
    request = pb.EvaluateRequest(methodology="org-development", version="2020", subject=pb.Subject(kind="central"),
                                 only=["data_actuality"], inputs={"systems": pb.Value(list=pb.ValueList(items=[
                                     pb.Value(record=pb.Record(fields={"actuality": pb.Value(decimal="1")})),
                                     pb.Value(record=pb.Record(fields={"actuality": pb.Value(decimal="0.5")})),
                                 ]))})
    response = stub.Evaluate(request)
    assert response.values["data_actuality"] == "18.75"


# ------------------------------------------------------------------------------ errors


def test_invalid_inputs_name_every_bad_field(stub):
    request = pb.EvaluateRequest(methodology="org-development", version="2020", subject=pb.Subject(kind="central"),
                                 only=["hr_potential", "nonsense"],
                                 inputs={"leaders_left": pb.Value(decimal="1.5"), "stability": pb.Value(decimal="99"),
                                         "staff_avg": pb.Value(decimal="abc"), "mystery": pb.Value(decimal="1"),
                                         "gender_mix": pb.Value()})
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(request)
    err = info.value
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = bad_request_of(rich_status(err))
    expected = {"inputs.leaders_left", "inputs.stability", "inputs.staff_avg", "inputs.mystery", "inputs.gender_mix",
                "inputs.leaders_avg", "inputs.staff_left", "inputs.exit_interview", "inputs.staff_quality", "only"}
    assert expected <= set(fields), set(fields)
    assert "not a whole number" in fields["inputs.leaders_left"]
    assert "out of range" in fields["inputs.stability"]
    assert "no value set" in fields["inputs.gender_mix"]
    for name in expected:
        assert name in err.details(), f"{name} missing from the status message"


def test_request_shape_errors(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(pb.EvaluateRequest(inputs={"a": pb.Value(decimal="1")}))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(bad_request_of(rich_status(info.value))) >= {"methodology", "version", "subject.kind"}

    both = acceptance_request()
    both.as_of.year, both.as_of.month, both.as_of.day = 2020, 1, 1
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(both)
    assert "version" in bad_request_of(rich_status(info.value))

    bad_date = acceptance_request(version="")
    bad_date.as_of.year, bad_date.as_of.month, bad_date.as_of.day = 2020, 2, 30
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(bad_date)
    assert "as_of" in bad_request_of(rich_status(info.value))


def test_unknown_subject_kind_and_language(stub):
    request = acceptance_request(subject=pb.Subject(kind="servant"), language="fr")
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "subject.kind" in bad_request_of(rich_status(info.value))


@pytest.mark.parametrize("methodology, version", [("no-such-methodology", "2020"), ("org-development", "1999")])
def test_not_found(stub, methodology, version):
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(acceptance_request(methodology=methodology, version=version))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert (methodology if methodology != "org-development" else version) in info.value.details()


def test_no_version_in_force(stub):
    request = acceptance_request(version="")
    request.as_of.year, request.as_of.month, request.as_of.day = 1995, 1, 1
    with pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(request)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "1995-01-01" in info.value.details()
    status = rich_status(info.value)
    assert any(d.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR) for d in status.details)


def test_batch_with_one_bad_item(stub):
    bad = acceptance_request("bad", inputs={"personnel": pb.Value(decimal="87.72"), "it": pb.Value(decimal="x")})
    missing = acceptance_request("gone", methodology="no-such-methodology")
    response = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[acceptance_request("ok-1"), bad, missing,
                                                                 acceptance_request("ok-2")]))
    ok1, err, gone, ok2 = response.items
    assert_acceptance(ok1)
    assert_acceptance(ok2)
    assert err.request_id == "bad" and err.error.code == code_pb2.INVALID_ARGUMENT and not err.values
    assert "inputs.it" in bad_request_of(err.error) and "inputs.it" in err.error.message
    assert gone.error.code == code_pb2.NOT_FOUND


def test_stream_with_one_bad_item(stub):
    bad = acceptance_request("bad", inputs={"personnel": pb.Value(decimal="187.72"), "it": pb.Value(decimal="97.98")})
    batches = [pb.EvaluateBatchRequest(items=[acceptance_request("a")]),
               pb.EvaluateBatchRequest(items=[bad, acceptance_request("b")]),
               pb.EvaluateBatchRequest(items=[acceptance_request("c")])]
    responses = list(stub.EvaluateStream(iter(batches)))
    assert len(responses) == 3
    assert_acceptance(responses[0].items[0])
    assert responses[1].items[0].error.code == code_pb2.INVALID_ARGUMENT
    assert "inputs.personnel" in bad_request_of(responses[1].items[0].error)
    assert_acceptance(responses[1].items[1])
    assert_acceptance(responses[2].items[0])


def test_batch_too_large(start_server):
    server = start_server(max_batch_size=3)
    with channel_to(server) as channel:
        stub = pb_grpc.ScoringServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[acceptance_request()] * 4))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "at most 3" in info.value.details()
        assert "items" in bad_request_of(rich_status(info.value))
        with pytest.raises(grpc.RpcError) as info:
            list(stub.EvaluateStream(iter([pb.EvaluateBatchRequest(items=[acceptance_request()] * 4)])))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "stream message 1" in info.value.details()


def test_message_too_large(start_server):
    server = start_server(max_message_bytes=4096)
    with channel_to(server) as channel:
        stub = pb_grpc.ScoringServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[acceptance_request(request_id="x" * 100)] * 100))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "larger than max" in info.value.details()


def test_deadline_exceeded(stub):
    big = pb.EvaluateBatchRequest(items=[acceptance_request(f"d{i}") for i in range(1000)])
    with pytest.raises(grpc.RpcError) as info:
        stub.EvaluateBatch(big, timeout=0.001)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_internal_error_is_not_leaked(shared_server, stub, monkeypatch):
    from structlog.testing import capture_logs

    cv = shared_server.rules.current.get("org-development", "2020")

    def broken(_request):
        raise RuntimeError("secret: /srv/bagalau/db-password=hunter2")

    monkeypatch.setattr(cv, "evaluate", broken)
    with capture_logs() as logs, pytest.raises(grpc.RpcError) as info:
        stub.Evaluate(acceptance_request(), metadata=(("x-request-id", "leak-check"),))
    assert info.value.code() == grpc.StatusCode.INTERNAL
    assert "hunter2" not in info.value.details() and "secret" not in info.value.details()
    assert "leak-check" in info.value.details()
    status = rich_status(info.value)
    assert all(b"hunter2" not in d.value for d in status.details)
    logged = [e for e in logs if e.get("event") == "internal error" and e.get("request_id") == "leak-check"]
    assert logged and "hunter2" in str(logged[0]["exc_info"]), "the details are in the service's log"

    response = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[acceptance_request()]))
    assert response.items[0].error.code == code_pb2.INTERNAL
    assert "hunter2" not in response.items[0].error.message


# ------------------------------------------------------------------------------ methodologies and rules


def test_list_methodologies(stub, shared_server):
    response = stub.ListMethodologies(pb.ListMethodologiesRequest())
    assert response.content_hash == shared_server.rules.current.content_hash
    by_name = {m.name: m for m in response.methodologies}
    org = by_name["org-development"]
    v2020 = next(v for v in org.versions if v.version == "2020")
    assert v2020.status == pb.VERSION_STATUS_IN_FORCE
    assert (v2020.effective_from.year, v2020.effective_from.month, v2020.effective_from.day) == (2020, 1, 1)
    assert v2020.content_hash.startswith("sha256:") and "32/НҚ" in v2020.basis
    assert v2020.source_path == "org-development/2020.bgl"
    assert not v2020.schemas, "schemas come with GetMethodology"


def test_get_methodology_schema(stub):
    response = stub.GetMethodology(pb.GetMethodologyRequest(methodology="org-development", version="2020",
                                                            subject_kind="central"))
    (version,) = response.methodology.versions
    (schema,) = version.schemas
    assert schema.subject_kind == "central"
    inputs = {i.name: i for i in schema.inputs}
    assert inputs["stability"].type == pb.INPUT_TYPE_POINTS and inputs["stability"].max == "5"
    assert inputs["leaders_left"].type == pb.INPUT_TYPE_COUNT and inputs["leaders_left"].min == "0"
    assert not inputs["leaders_left"].min_exclusive and not inputs["leaders_left"].max_input
    assert inputs["staff_avg"].min == "0" and inputs["staff_avg"].min_exclusive, "> 0: zero itself is refused"
    assert inputs["trained_advanced"].max_input == "due_advanced" and inputs["trained_advanced"].max == ""
    assert inputs["training_violations"].default_value.decimal == "0"
    assert inputs["systems"].type == pb.INPUT_TYPE_LIST and inputs["systems"].fields[0].name == "actuality"
    assert inputs["stability"].labels["en"] == "Stability of staff composition"
    outputs = {o.name: o for o in schema.outputs}
    assert outputs["block"].kind == pb.OUTPUT_KIND_SCORE and list(outputs["block"].grades)[0] == "high"
    assert outputs["block"].max == "100"


def test_get_methodology_selection(stub):
    every = stub.GetMethodology(pb.GetMethodologyRequest(methodology="org-development"))
    assert len(every.methodology.versions) >= 2
    assert all(v.schemas for v in every.methodology.versions)
    request = pb.GetMethodologyRequest(methodology="org-development", subject_kind="central")
    request.as_of.year, request.as_of.month, request.as_of.day = 2020, 6, 1
    (v,) = stub.GetMethodology(request).methodology.versions
    assert v.version == "2020"


def test_get_methodology_errors(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.GetMethodology(pb.GetMethodologyRequest(methodology="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        stub.GetMethodology(pb.GetMethodologyRequest())
    assert "methodology" in bad_request_of(rich_status(info.value))
    with pytest.raises(grpc.RpcError) as info:
        stub.GetMethodology(pb.GetMethodologyRequest(methodology="org-development", version="2020", subject_kind="martian"))
    assert "subject_kind" in bad_request_of(rich_status(info.value))
    request = pb.GetMethodologyRequest(methodology="org-development")
    request.as_of.year, request.as_of.month, request.as_of.day = 1990, 1, 1
    with pytest.raises(grpc.RpcError) as info:
        stub.GetMethodology(request)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_check_rules_good_and_bad(stub):
    good = stub.CheckRules(pb.CheckRulesRequest(source=DEMO_RULES, filename="demo/1.bgl"))
    assert good.ok and good.error_count == 0
    bad = stub.CheckRules(pb.CheckRulesRequest(source=DEMO_RULES.replace("= a", "= a + b")))
    assert not bad.ok and bad.error_count >= 1
    d = next(d for d in bad.diagnostics if d.severity == pb.SEVERITY_ERROR)
    assert d.code == "E200" and d.file == "request.bgl" and d.line == 9
    assert "^" in d.formatted and d.source_line.startswith("score total")


def test_check_rules_matches_the_cli(stub, tmp_path, capsys):
    """The same diagnostics as `bagalau check`."""
    from service.cli import main

    source = DEMO_RULES.replace("max 10 = a", "max 5 = a")
    path = tmp_path / "demo.bgl"
    path.write_text(source, encoding="utf-8")
    main(["check", str(path)])
    printed = capsys.readouterr().out
    response = stub.CheckRules(pb.CheckRulesRequest(source=source, filename=str(path)))
    assert response.diagnostics
    for d in response.diagnostics:
        assert d.formatted in printed


def test_check_rules_amendment_uses_served_bases(stub):
    source = (RULES / "org-development" / "2021-proposed.bgl").read_text(encoding="utf-8")
    response = stub.CheckRules(pb.CheckRulesRequest(source=source, filename="org-development/2021-proposed.bgl"))
    assert response.ok, [d.formatted for d in response.diagnostics]


# ------------------------------------------------------------------------------ audit over gRPC


def test_get_evaluation(stub, shared_server):
    request = acceptance_request("audited", inputs={"personnel": pb.Value(decimal="87.720"), "it": pb.Value(decimal="97.98")})
    response = stub.Evaluate(request)
    shared_server.audit.flush(10)
    record = stub.GetEvaluation(pb.GetEvaluationRequest(evaluation_id=response.evaluation_id)).evaluation
    assert record.evaluation_id == response.evaluation_id
    assert record.request == request, "the request is stored exactly"
    assert record.request.inputs["personnel"].decimal == "87.720"
    assert record.response.values == response.values and record.response.grades["block"] == "high"
    assert record.sequence >= 1 and len(record.record_hash) == 64
    assert record.peer.startswith("ipv4:127.0.0.1") and record.caller == ""
    assert record.recorded_at.seconds > 0


def test_get_evaluation_errors(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.GetEvaluation(pb.GetEvaluationRequest(evaluation_id="0190abcd-0000-7000-8000-000000000000"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as info:
        stub.GetEvaluation(pb.GetEvaluationRequest())
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_audit_off(start_server):
    server = start_server(audit="none")
    with channel_to(server) as channel:
        stub = pb_grpc.ScoringServiceStub(channel)
        response = stub.Evaluate(acceptance_request())
        assert_acceptance(response)
        assert response.evaluation_id == ""
        with pytest.raises(grpc.RpcError) as info:
            stub.GetEvaluation(pb.GetEvaluationRequest(evaluation_id="x"))
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


# ------------------------------------------------------------------------------ tooling: health, reflection, metrics


def test_health(shared_server):
    with channel_to(shared_server) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE_NAME):
            assert health.Check(health_pb2.HealthCheckRequest(service=service)).status == health_pb2.HealthCheckResponse.SERVING


def test_reflection(shared_server):
    with channel_to(shared_server) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        services = db.get_services()
        assert SERVICE_NAME in services and "grpc.health.v1.Health" in services
        from google.protobuf.descriptor_pool import DescriptorPool

        pool = DescriptorPool(db)
        service = pool.FindServiceByName(SERVICE_NAME)
        assert {m.name for m in service.methods} >= {"Evaluate", "EvaluateBatch", "EvaluateStream", "ListMethodologies",
                                                     "GetMethodology", "CheckRules", "GetEvaluation"}
        assert pool.FindMessageTypeByName("bagalau.v1.EvaluateRequest").fields_by_name["as_of"].message_type.full_name \
            == "google.type.Date"


def test_metrics_endpoint(start_server):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = start_server(metrics_port=port)
    with channel_to(server) as channel:
        pb_grpc.ScoringServiceStub(channel).Evaluate(acceptance_request())
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics.port}/metrics", timeout=10).read().decode()
    assert 'bagalau_rpc_calls_total{code="OK",method="Evaluate"}' in text
    assert "bagalau_rpc_latency_seconds_bucket" in text
    assert 'bagalau_evaluations_total{methodology="org-development",outcome="ok",version="2020"}' in text
    assert "bagalau_rules_info{content_hash=" in text
    assert "bagalau_rule_reloads_total" in text or "bagalau_rule_reloads" in text

