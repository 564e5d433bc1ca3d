"""The service's pieces on their own: message conversion, error mapping, settings, evaluation ids."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import grpc
import pytest
from google.rpc import code_pb2, error_details_pb2
from pydantic import ValidationError

from dsl.errors import EvaluationFailed, FieldIssue, InputError, NoVersionInForce, UnknownMethodology, UnknownVersion
from service import convert
from service.audit import new_evaluation_ids
from service.errors import ServiceError, field_path, status_for
from service.protos import pb
from service.settings import Settings
from service_support import acceptance_request

# ------------------------------------------------------------------------------ convert


def test_values_become_library_values():
    request = pb.EvaluateRequest(
        methodology="m", version="1", subject=pb.Subject(id="s", kind="central"), only=["x"], explain=True,
        inputs={"d": pb.Value(decimal=" 87.720 "), "bad": pb.Value(decimal="1,5"), "nan": pb.Value(decimal="NaN"),
                "f": pb.Value(flag=True), "t": pb.Value(text="2020-01-01"),
                "l": pb.Value(list=pb.ValueList(items=[pb.Value(record=pb.Record(fields={"q": pb.Value(decimal="0.5")}))])),
                "empty": pb.Value()})
    selection, ev, issues = convert.evaluation_from_pb(request)
    assert selection == convert.Selection("m", "1", None)
    assert ev.inputs["d"] == Decimal("87.720") and str(ev.inputs["d"]) == "87.720"
    assert ev.inputs["bad"] == "1,5" and ev.inputs["nan"] == "NaN", "malformed decimals go on for the library to report"
    assert ev.inputs["f"] is True and ev.inputs["t"] == "2020-01-01"
    assert ev.inputs["l"] == [{"q": Decimal("0.5")}]
    assert "empty" not in ev.inputs and [i.field for i in issues] == ["empty"]
    assert (ev.subject_id, ev.subject_kind, ev.only, ev.explain, ev.language) == ("s", "central", ["x"], True, "kk")
    assert not any(isinstance(v, float) for v in ev.inputs.values())


def test_request_without_a_version_selection():
    selection, _, issues = convert.evaluation_from_pb(pb.EvaluateRequest())
    assert selection is None
    assert [i.field for i in issues] == ["methodology", "version", "subject.kind"]
    request = acceptance_request(version="")
    request.as_of.year, request.as_of.month, request.as_of.day = 2021, 3, 4
    selection, _, issues = convert.evaluation_from_pb(request)
    assert selection.as_of == date(2021, 3, 4) and not issues


def test_python_values_become_values():
    assert convert.python_to_value(Decimal("0.10")).decimal == "0.10"
    assert convert.python_to_value(3).decimal == "3"
    assert convert.python_to_value(False).flag is False
    assert convert.python_to_value(date(2020, 1, 2)).text == "2020-01-02"
    assert convert.python_to_value([{"a": Decimal(1)}]).list.items[0].record.fields["a"].decimal == "1"
    with pytest.raises(TypeError):
        convert.python_to_value(0.1)


# ------------------------------------------------------------------------------ errors


def unpack(status, kind):
    for detail in status.details:
        if detail.Is(kind.DESCRIPTOR):
            message = kind()
            detail.Unpack(message)
            return message
    return None


def test_field_paths():
    assert field_path("leaders_left") == "inputs.leaders_left"
    assert field_path("systems[2].actuality") == "inputs.systems[2].actuality"
    assert field_path("subject.kind") == "subject.kind"
    assert field_path("only") == "only" and field_path("items") == "items"


def test_input_error_lists_every_field():
    error = InputError([FieldIssue("b", "too big"), FieldIssue("a", "missing"),
                        FieldIssue("x, y", "x + y must not exceed 10"), FieldIssue("only", "z is not a value")])
    status = status_for(error)
    assert status.code == code_pb2.INVALID_ARGUMENT
    violations = [(v.field, v.description) for v in unpack(status, error_details_pb2.BadRequest).field_violations]
    assert ("inputs.a", "missing") in violations and ("inputs.b", "too big") in violations
    assert ("inputs.x", "x + y must not exceed 10") in violations and ("inputs.y", "x + y must not exceed 10") in violations
    assert ("only", "z is not a value") in violations
    assert status.message.startswith("invalid request (5 problems: inputs.a, inputs.b, ")
    assert unpack(status, error_details_pb2.ErrorInfo).reason == "INVALID_ARGUMENT"


def test_long_messages_are_cut_but_details_are_whole():
    error = InputError([FieldIssue(f"input_{n:03d}", "missing; expected a whole number >= 0" * 3) for n in range(200)])
    status = status_for(error)
    assert len(status.message) <= 3000
    assert len(unpack(status, error_details_pb2.BadRequest).field_violations) == 200


@pytest.mark.parametrize("error, code, reason", [
    (UnknownMethodology("unknown methodology 'x'"), code_pb2.NOT_FOUND, "UNKNOWN_METHODOLOGY"),
    (UnknownVersion("no version '9'"), code_pb2.NOT_FOUND, "UNKNOWN_VERSION"),
    (NoVersionInForce("none in force on 1990-01-01"), code_pb2.FAILED_PRECONDITION, "NO_VERSION_IN_FORCE"),
    (EvaluationFailed("could not compute x: division by zero"), code_pb2.INVALID_ARGUMENT, "EVALUATION_FAILED"),
    (ServiceError(grpc.StatusCode.UNAVAILABLE, "try later", "AUDIT_UNAVAILABLE"), code_pb2.UNAVAILABLE, "AUDIT_UNAVAILABLE"),
])
def test_library_errors_map_to_codes(error, code, reason):
    status = status_for(error)
    assert status.code == code and status.message == str(error)
    assert unpack(status, error_details_pb2.ErrorInfo).reason == reason


def test_unexpected_errors_hide_their_text():
    status = status_for(KeyError("/etc/secret"), request_id="req-1")
    assert status.code == code_pb2.INTERNAL
    assert "secret" not in status.message and "req-1" in status.message
    assert "secret" not in str(status.details)


# ------------------------------------------------------------------------------ settings


def test_settings_defaults(monkeypatch):
    for name in list(__import__("os").environ):
        if name.startswith("BAGALAU_"):
            monkeypatch.delenv(name)
    s = Settings()
    assert s.address == "127.0.0.1:50051" and s.audit == "sqlite:///var/audit.db" and s.metrics_port == 9464
    assert s.rules == Path("rules") and s.rules_dir() == Path.cwd() / "rules"
    assert not s.tls and s.loopback


def test_settings_from_environment_and_overrides(monkeypatch):
    monkeypatch.setenv("BAGALAU_ADDRESS", "[::1]:6000")
    monkeypatch.setenv("BAGALAU_MAX_BATCH_SIZE", "50")
    monkeypatch.setenv("BAGALAU_AUDIT", "none")
    s = Settings()
    assert (s.address, s.max_batch_size, s.audit) == ("[::1]:6000", 50, "none") and s.loopback
    assert Settings(address="127.0.0.1:7000").address == "127.0.0.1:7000", "flags win over the environment"


@pytest.mark.parametrize("values, message", [
    ({"address": "localhost"}, "HOST:PORT"),
    ({"address": "[::]:50051"}, "no TLS certificate"),
    ({"tls_cert": "a.pem"}, "both tls_cert and tls_key"),
    ({"tls_client_ca": "ca.pem"}, "mutual TLS"),
    ({"audit": "mysql://x"}, "sqlite:///PATH"),
    ({"max_batch_size": 10, "audit_queue_size": 5}, "audit_queue_size"),
])
def test_bad_settings(values, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(**values)


def test_plaintext_on_a_public_address_when_asked():
    assert Settings(address="0.0.0.0:50051", plaintext=True).plaintext


# ------------------------------------------------------------------------------ ids


def test_evaluation_ids_are_uuid7_and_ordered():
    import uuid

    ids = new_evaluation_ids(1000)
    assert len(set(ids)) == 1000
    for text in ids[:50]:
        u = uuid.UUID(text)
        assert u.version == 7 and u.variant == uuid.RFC_4122
    later = new_evaluation_ids(1)[0]
    assert later[:13] >= ids[0][:13]


# ------------------------------------------------------------------------------ request views


def test_views_read_what_the_messages_hold():
    from service.views import EvaluateRequestView, to_request, to_view

    request = pb.EvaluateRequest(
        request_id="r", methodology="m", version="1", subject=pb.Subject(id="s", kind="central"), only=["x"],
        inputs={"d": pb.Value(decimal="87.720"), "long": pb.Value(decimal="1" * 200), "f": pb.Value(flag=False),
                "t": pb.Value(text="a"), "zero": pb.Value(decimal="0"),
                "l": pb.Value(list=pb.ValueList(items=[pb.Value(record=pb.Record(fields={"q": pb.Value(decimal="0.5")}))]))})
    view = to_view(request)
    assert isinstance(view, EvaluateRequestView) and to_request(view) == request
    _, from_view, _ = convert.evaluation_from_pb(view)
    _, again, _ = convert.evaluation_from_pb(view)  # from the cache of entries seen before
    expected = {name: convert.value_to_python(value, name, []) for name, value in request.inputs.items()}
    assert from_view.inputs == again.inputs == expected
    assert from_view.inputs["f"] is False and str(from_view.inputs["long"]) == "1" * 200
    # decoded once and shared: evaluation never changes its inputs (tests/lang/test_evaluate.py)
    assert again.inputs["l"] is from_view.inputs["l"]


def test_views_follow_the_wire_rules():
    # a name sent twice: the last wins, as in a protobuf map
    entry = lambda name, value: (b"\x32" + bytes([len(e := pb.EvaluateRequest(inputs={name: value}).SerializeToString()[2:])]) + e)  # noqa: E731
    data = (pb.EvaluateRequest(methodology="m", version="1", subject=pb.Subject(kind="central")).SerializeToString()
            + entry("a", pb.Value(decimal="1")) + entry("a", pb.Value(decimal="2")))
    assert pb.EvaluateRequest.FromString(data).inputs["a"].decimal == "2"
    _, ev, issues = convert.evaluation_from_pb(pb.EvaluateRequest.FromString(data))
    from service.views import EvaluateRequestView

    _, ev_view, _ = convert.evaluation_from_pb(EvaluateRequestView.FromString(data))
    assert ev.inputs == ev_view.inputs == {"a": Decimal("2")} and not issues

    # a Value that is not valid UTF-8, and one with nothing set: named problems, not exceptions
    bad = pb.EvaluateRequest(methodology="m", version="1", subject=pb.Subject(kind="central")).SerializeToString() \
        + b"\x32\x09\x0a\x01x\x12\x04\x0a\x02\xff\xfe" + entry("empty", pb.Value())
    _, ev, issues = convert.evaluation_from_pb(EvaluateRequestView.FromString(bad))
    assert sorted(i.field for i in issues) == ["empty", "x"] and not ev.inputs


def test_result_text_is_format_decimal():
    import random

    from dsl.decimals import format_decimal

    rng = random.Random(7)
    cases = [Decimal("-0"), Decimal("0E-7"), Decimal("0E+3"), Decimal("-0.00"), Decimal("1E+5"), Decimal("1.5E-9"),
             Decimal("-0.5"), Decimal("92.9"), Decimal("10")]
    cases += [Decimal(rng.randint(-10**6, 10**6)).scaleb(rng.randint(-12, 6)) for _ in range(3000)]
    for d in cases:
        assert convert.result_text(d) == format_decimal(d), d
