"""DiffVersions and AnalyzeImpact through a real server and client, checked against dsl.diff and dsl.impact."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from dsl import decimals
from dsl.diff import diff_versions
from dsl.impact import analyze_impact
from service.convert import python_to_value
from service.protos import pb

from service_support import RULES

ROOT = Path(__file__).resolve().parents[2]
SUBJECTS = ROOT / "examples" / "org-development-subjects.jsonl"
OD2020 = pb.VersionRef(methodology="org-development", version="2020")
OD2021 = pb.VersionRef(version="2021-proposed")  # the methodology of `old` is meant


def status_of(err: grpc.RpcError):
    status = rpc_status.from_call(err)
    assert status is not None, "the error carries no google.rpc.Status"
    return status


def violations(err: grpc.RpcError) -> dict[str, str]:
    for detail in status_of(err).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            br = error_details_pb2.BadRequest()
            detail.Unpack(br)
            return {v.field: v.description for v in br.field_violations}
    raise AssertionError("no BadRequest in the status")


def reason(err: grpc.RpcError) -> str:
    for detail in status_of(err).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info.reason
    raise AssertionError("no ErrorInfo in the status")


@pytest.fixture(scope="module")
def versions(shipped_registry):
    return shipped_registry.get("org-development", "2020"), shipped_registry.get("org-development", "2021-proposed")


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return [decimals.loads(line) for line in SUBJECTS.read_text(encoding="utf-8").splitlines() if line.strip()]


def subject_pb(row: dict) -> pb.ImpactSubject:
    s = row["subject"]
    return pb.ImpactSubject(subject=pb.Subject(id=s["id"], kind=s["kind"]), name=s.get("name", ""),
                            synthetic=s.get("synthetic") is True,
                            inputs={k: python_to_value(v) for k, v in row["inputs"].items()})


def impact_stream(setup: pb.ImpactSetup, rows: list[dict], batch: int = 10):
    """The setup alone first, then the subjects in batches."""
    yield pb.AnalyzeImpactRequest(setup=setup)
    for i in range(0, len(rows), batch):
        yield pb.AnalyzeImpactRequest(subjects=[subject_pb(r) for r in rows[i:i + batch]])


# ------------------------------------------------------------------------------ DiffVersions


def test_diff_names_the_net_turnover_change(stub, versions):
    response = stub.DiffVersions(pb.DiffVersionsRequest(old=OD2020, new=OD2021))
    turnover = [c for c in response.changes if c.name == "net_turnover" and c.field == "constant"]
    assert turnover, [c.description for c in response.changes]
    for c in turnover:
        assert (c.op, c.old, c.new, c.thing) == (pb.CHANGE_OP_CHANGED, "0.08", "0.09", "indicator")
        assert c.old_source.file == "org-development/2020.bgl" and c.old_source.line > 0
        assert c.new_source.file == "org-development/2021-proposed.bgl" and c.new_source.line > 0
        assert "0.08 → 0.09" in c.description and c.labels["en"]
        assert set(c.subject_kinds) == {"central", "local"}

    # the very changes the library finds, in the same order
    expected = diff_versions(*versions)
    assert [(c.name, c.thing, c.field, c.part, c.old, c.new) for c in expected.changes] == \
        [(c.name, c.thing, c.field, c.part, c.old if c.HasField("old") else None, c.new if c.HasField("new") else None)
         for c in response.changes]
    counts = expected.counts()
    assert (response.counts.added, response.counts.removed, response.counts.changed) == \
        (counts["added"], counts["removed"], counts["changed"])
    assert (response.old.methodology, response.old.version.version) == ("org-development", "2020")
    assert response.new.version.status == pb.VERSION_STATUS_PROPOSED and response.new.version.extends == "2020"
    assert not response.HasField("document"), "no format asked: no document"
    added = next(c for c in response.changes if c.op == pb.CHANGE_OP_ADDED)
    assert not added.HasField("old") and added.HasField("new")


@pytest.mark.parametrize("fmt, media, check", [
    (pb.DIFF_FORMAT_JSON, "application/json", lambda text: "net_turnover" in {c["name"] for c in json.loads(text)}),
    (pb.DIFF_FORMAT_TEXT, "text/plain; charset=utf-8", lambda text: "net_turnover" in text and "\x1b[" not in text),
    (pb.DIFF_FORMAT_MARKDOWN, "text/markdown; charset=utf-8", lambda text: text.lstrip().startswith("#")),
    (pb.DIFF_FORMAT_HTML, "text/html; charset=utf-8", lambda text: "<html" in text and "net_turnover" in text),
])
def test_diff_rendered_documents(stub, fmt, media, check):
    response = stub.DiffVersions(pb.DiffVersionsRequest(old=OD2020, new=OD2021, format=fmt, language="en"))
    document = response.document
    assert document.media_type == media and check(document.content)
    assert str(RULES) not in document.content and str(RULES.resolve()) not in document.content, \
        "rule files are named relative to the rules folder"


def test_diff_errors(stub):
    with pytest.raises(grpc.RpcError) as info:
        stub.DiffVersions(pb.DiffVersionsRequest(old=OD2020, new=pb.VersionRef(version="1999")))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and reason(info.value) == "UNKNOWN_VERSION"
    assert "1999" in info.value.details()
    with pytest.raises(grpc.RpcError) as info:
        stub.DiffVersions(pb.DiffVersionsRequest(old=pb.VersionRef(methodology="no-such", version="1"), new=OD2021))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND and reason(info.value) == "UNKNOWN_METHODOLOGY"
    with pytest.raises(grpc.RpcError) as info:
        stub.DiffVersions(pb.DiffVersionsRequest(old=pb.VersionRef(version="2020"), language="fr", format=42))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(info.value)) == {"old.methodology", "new.version", "language", "format"}


# ------------------------------------------------------------------------------ AnalyzeImpact


def test_impact_over_the_example_subjects_matches_the_library(stub, versions, rows):
    response = stub.AnalyzeImpact(impact_stream(pb.ImpactSetup(old=OD2020, new=OD2021), rows))
    expected = analyze_impact(*versions, rows)

    assert response.counts.subjects == len(rows) == len(response.subjects)
    assert response.counts.failed_any == expected.counts()["failed_any"]
    assert list(response.values) == expected.values and response.rank_by == expected.rank_by
    by_value = {t.value: t for t in response.transitions}
    assert set(by_value) == set(expected.transitions)
    for name, matrix in expected.transitions.items():
        got = by_value[name]
        assert (list(got.old_grades), list(got.new_grades)) == (matrix.old_grades, matrix.new_grades)
        assert [list(r.counts) for r in got.rows] == matrix.counts, name
        assert got.changed == matrix.changed() and got.total == matrix.total
        assert response.counts.grade_changed[name] == matrix.changed()
    assert any(t.changed for t in response.transitions), "the 2021 proposal moves some grades"

    for got, want in zip(response.subjects, expected.subjects):
        assert (got.index, got.id, got.kind, got.name, got.synthetic) == (want.line, want.id, want.kind, want.name, want.synthetic)
        assert dict(got.old.values) == {k: decimals.format_decimal(v) for k, v in want.old.values.items() if v is not None}
        assert dict(got.new.grades) == want.new.grades
        assert (got.rank_old if got.HasField("rank_old") else None) == want.rank_old
        assert (got.rank_change if got.HasField("rank_change") else None) == want.rank_change
    assert [m.id for m in response.movers] == [s.id for s in expected.movers]
    assert [s.value for s in response.summaries] == list(expected.summaries)
    block = next(s for s in response.summaries if s.value == expected.rank_by)
    assert block.mean_delta == decimals.format_decimal(expected.summaries[expected.rank_by].mean_delta)


def test_impact_subjects_in_the_first_message_and_a_rendered_report(stub, rows):
    first = pb.AnalyzeImpactRequest(setup=pb.ImpactSetup(old=OD2020, new=OD2021, movers=3, language="en",
                                                         format=pb.IMPACT_FORMAT_CSV),
                                    subjects=[subject_pb(r) for r in rows[:4]])
    broken = pb.ImpactSubject(subject=pb.Subject(id="no-inputs", kind="central"))
    response = stub.AnalyzeImpact(iter([first, pb.AnalyzeImpactRequest(subjects=[broken])]))
    assert response.counts.subjects == 5 and len(response.movers) <= 3
    failed = response.subjects[4]
    assert failed.id == "no-inputs" and failed.old.error and failed.old.error_type == "InputError"
    assert failed.old.issues and response.counts.failed_any == 1
    assert {(f.id, f.version) for f in response.failures} == {("no-inputs", "org-development@2020"),
                                                              ("no-inputs", "org-development@2021-proposed")}
    assert response.document.media_type == "text/csv; charset=utf-8"
    table = list(csv.reader(io.StringIO(response.document.content)))
    assert len(table) >= 6 and any("no-inputs" in cell for row in table for cell in row)


def test_impact_errors(stub):
    def call(*messages):
        with pytest.raises(grpc.RpcError) as info:
            stub.AnalyzeImpact(iter(messages))
        return info.value

    setup = pb.ImpactSetup(old=OD2020, new=OD2021)
    err = call(pb.AnalyzeImpactRequest(setup=pb.ImpactSetup(old=OD2020, new=pb.VersionRef(version="1999"))))
    assert err.code() == grpc.StatusCode.NOT_FOUND and reason(err) == "UNKNOWN_VERSION"
    err = call(pb.AnalyzeImpactRequest(subjects=[pb.ImpactSubject(subject=pb.Subject(kind="central"))]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "setup" in violations(err)
    err = call()
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "setup" in violations(err)
    err = call(pb.AnalyzeImpactRequest(setup=setup), pb.AnalyzeImpactRequest(setup=setup))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "stream message 2" in violations(err)["setup"]
    err = call(pb.AnalyzeImpactRequest(setup=pb.ImpactSetup(old=OD2020, new=OD2021, rank_by="nope", values=["nix"],
                                                            movers=-1, language="fr")))
    assert set(violations(err)) == {"setup.rank_by", "setup.values", "setup.movers", "setup.language"}
    unset = pb.ImpactSubject(subject=pb.Subject(kind="central"), inputs={"leaders_left": pb.Value()})
    err = call(pb.AnalyzeImpactRequest(setup=setup), pb.AnalyzeImpactRequest(subjects=[unset]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "subjects[0].inputs.leaders_left" in violations(err)


def test_impact_batch_limit(start_server, rows):
    server = start_server(max_batch_size=3)
    from service.protos import pb_grpc
    from service_support import channel_to

    with channel_to(server) as channel:
        stub = pb_grpc.ScoringServiceStub(channel)
        with pytest.raises(grpc.RpcError) as info:
            stub.AnalyzeImpact(iter([pb.AnalyzeImpactRequest(setup=pb.ImpactSetup(old=OD2020, new=OD2021),
                                                             subjects=[subject_pb(r) for r in rows[:4]])]))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 3" in info.value.details()
        response = stub.AnalyzeImpact(impact_stream(pb.ImpactSetup(old=OD2020, new=OD2021), rows[:7], batch=3))
        assert response.counts.subjects == 7
