"""The audit log on SQLite and PostgreSQL: recording, GetEvaluation, the hash chain, verify, show, replay."""

from __future__ import annotations

import json
import sqlite3

import pytest

from service.audit import AuditRecord, AuditWriter, open_store, verify
from service.cli import main
from service.protos import pb, pb_grpc
from service_support import DEMO_RULES, RULES, acceptance_request, assert_acceptance, channel_to


def score_some(server, count: int = 5) -> list[pb.EvaluateResponse]:
    with channel_to(server) as channel:
        stub = pb_grpc.ScoringServiceStub(channel)
        first = stub.Evaluate(acceptance_request("one", inputs={"personnel": pb.Value(decimal="87.720"),
                                                                  "it": pb.Value(decimal="97.98")}))
        batch = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[acceptance_request(f"b{i}") for i in range(count - 1)]
                                                           + [acceptance_request("bad", methodology="nope")]))
    responses = [first] + [r for r in batch.items if not r.HasField("error")]
    assert server.audit.flush(20)
    return responses


def record(n: int, **overrides) -> AuditRecord:
    fields = dict(evaluation_id=f"id-{n}", recorded_at="2026-01-01T00:00:00.000000+00:00", caller="", peer="test",
                  request_id=f"r{n}", methodology="m", version="1", content_hash="sha256:x", subject_id=f"s{n}",
                  subject_kind="central", request=acceptance_request(f"r{n}").SerializeToString(deterministic=True),
                  response=b"")
    fields.update(overrides)
    return AuditRecord(**fields)


def test_record_rows_follow_the_columns():
    from service.audit import COLUMNS

    r = record(1, caller="CN=x", sequence=4, prev_hash="p", record_hash="h")
    assert r.row() == tuple(getattr(r, c) for c in COLUMNS)


def test_the_hash_covers_every_field():
    base = record(1)
    base.seal(1, "0" * 64)
    for name in ("evaluation_id", "recorded_at", "caller", "peer", "request_id", "methodology", "version", "content_hash",
                 "subject_id", "subject_kind", "request", "response", "sequence"):
        changed = record(1, sequence=1)
        value = getattr(changed, name)
        setattr(changed, name, value + (b"x" if isinstance(value, bytes) else 1 if isinstance(value, int) else "x"))
        assert changed.chain_hash("0" * 64) != base.record_hash, name
    assert base.chain_hash("1" * 64) != base.record_hash


@pytest.mark.parametrize("text", ["", "plain", 'quote " and \\ backslash', "new\nline\ttab\r\x00\x1f\x7f",
                                  "қазақша, русский", "emoji 🧮", "\u2028\u2029"])
def test_the_canonical_header_is_the_json_array_it_always_was(text):
    """The chain's definition: records written before stay verifiable. ``canonical`` writes the
    header out by hand (speed); it must give exactly what the JSON encoder gives."""
    r = record(1, caller=text, peer=text, request_id=text, subject_id=text, evaluation_id=text, sequence=12345,
               response=b"\x00response")
    header, _, rest = r.canonical().partition(b"\n")
    fields = [r.sequence, r.evaluation_id, r.recorded_at, r.caller, r.peer, r.request_id, r.methodology, r.version,
              r.content_hash, r.subject_id, r.subject_kind, len(r.request), len(r.response)]
    expected = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert header == expected
    assert rest == r.request + r.response


# ------------------------------------------------------------------------------ SQLite

def test_sqlite_records_every_evaluation_exactly(start_server, tmp_path, capsys):
    server = start_server()
    responses = score_some(server)
    url = server.settings.audit
    store = open_store(url)
    rows = list(store.scan())
    assert [r.sequence for r in rows] == list(range(1, len(responses) + 1)), "the bad batch item is not recorded"
    assert {r.evaluation_id for r in rows} == {r.evaluation_id for r in responses}
    first = store.get(responses[0].evaluation_id)
    request = pb.EvaluateRequest.FromString(first.request)
    assert request.inputs["personnel"].decimal == "87.720", "inputs are stored exactly, as sent"
    assert pb.EvaluateResponse.FromString(first.response).values["block"] == "92.9"
    assert (first.methodology, first.version, first.subject_kind) == ("org-development", "2020", "central")
    assert first.content_hash == responses[0].content_hash and first.peer.startswith("ipv4:127.0.0.1")
    assert verify(store).ok

    assert main(["audit", "show", responses[0].evaluation_id, "--audit", url]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["request"]["inputs"]["personnel"] == {"decimal": "87.720"}
    assert shown["response"]["values"]["block"] == "92.9"
    db = sqlite3.connect(tmp_path / "audit.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_verify_detects_an_edited_row(start_server, tmp_path, capsys):
    server = start_server()
    responses = score_some(server)
    url = server.settings.audit
    assert main(["audit", "verify", "--audit", url]) == 0
    assert "intact" in capsys.readouterr().out

    victim = responses[2].evaluation_id
    tampered = pb.EvaluateResponse.FromString(open_store(url).get(victim).response)
    tampered.values["block"] = "99.9"
    db = sqlite3.connect(tmp_path / "audit.db")
    with db:
        db.execute("UPDATE audit_log SET response = ? WHERE evaluation_id = ?", (tampered.SerializeToString(), victim))
    assert main(["audit", "verify", "--audit", url]) == 1
    out = capsys.readouterr().out
    assert f"record 3 ({victim}): its content does not match its hash" in out
    assert out.count("TAMPERED") == 1


def test_sqlite_verify_detects_a_deleted_row_and_a_rehashed_edit(start_server, tmp_path, capsys):
    server = start_server()
    responses = score_some(server, count=6)
    url = server.settings.audit
    db = sqlite3.connect(tmp_path / "audit.db")
    with db:
        db.execute("DELETE FROM audit_log WHERE sequence = 2")
    assert main(["audit", "verify", "--audit", url]) == 1
    out = capsys.readouterr().out
    assert f"record 3 ({responses[2].evaluation_id}): record 2 before it is missing" in out

    # an edit whose author also fixed that row's hash still breaks the link to the next row
    store = open_store(url)
    row = store.get(responses[4].evaluation_id)
    row.subject_id = "someone-else"
    with db:
        db.execute("UPDATE audit_log SET subject_id = ?, record_hash = ? WHERE sequence = ?",
                   (row.subject_id, row.chain_hash(row.prev_hash), row.sequence))
    report = verify(store)
    assert any(p.sequence == row.sequence + 1 and "does not link" in p.message for p in report.problems)


def test_writer_flushes_on_close_and_chains_across_writers(tmp_path):
    url = f"sqlite:///{tmp_path / 'chain.db'}"
    one, two = AuditWriter(open_store(url), batch_size=7), AuditWriter(open_store(url), batch_size=5)
    for n in range(0, 100, 2):
        one.submit([record(n)])
        two.submit([record(n + 1)])
    one.close()
    two.close()
    store = open_store(url)
    report = verify(store)
    assert report.ok and report.records == 100 and report.head_sequence == 100
    assert {r.evaluation_id for r in store.scan()} == {f"id-{n}" for n in range(100)}


def test_audit_commands_on_a_missing_log(tmp_path, capsys):
    assert main(["audit", "verify", "--audit", f"sqlite:///{tmp_path / 'none.db'}"]) == 2
    assert "no audit log" in capsys.readouterr().err
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    open_store(url).close()
    assert main(["audit", "show", "no-such-id", "--audit", url]) == 2
    assert main(["audit", "verify", "--audit", url]) == 0


# ------------------------------------------------------------------------------ replay


def test_replay_same_and_differs(start_server, small_rules, tmp_path, capsys):
    server = start_server(registry=None, rules=small_rules)
    with channel_to(server) as channel:
        stub = pb_grpc.ScoringServiceStub(channel)
        demo = stub.Evaluate(pb.EvaluateRequest(methodology="demo", version="1", subject=pb.Subject(id="x", kind="central"),
                                                inputs={"a": pb.Value(decimal="4.5")}))
        org = stub.Evaluate(acceptance_request())
    assert_acceptance(org)
    server.audit.flush(10)
    url = server.settings.audit
    assert main(["audit", "replay", org.evaluation_id, "--audit", url, "--rules", str(RULES)]) == 0
    assert "same result" in capsys.readouterr().out
    assert main(["audit", "replay", demo.evaluation_id, "--audit", url, "--rules", str(small_rules)]) == 0
    capsys.readouterr()

    (small_rules / "demo" / "1.bgl").write_text(DEMO_RULES.replace("max 10 = a", "max 20 = 2 * a"), encoding="utf-8")
    assert main(["audit", "replay", demo.evaluation_id, "--audit", url, "--rules", str(small_rules)]) == 1
    out = capsys.readouterr().out
    assert "≠ total" in out and "recorded 4.5" in out and "today 9.0" in out and "(changed)" in out
    assert out.rstrip().endswith("differs")


# ------------------------------------------------------------------------------ PostgreSQL


def test_postgres_audit_log(start_server, pg_url, capsys):
    import psycopg

    server = start_server(audit=pg_url)
    responses = score_some(server, count=4)
    with channel_to(server) as channel:
        stub = pb_grpc.ScoringServiceStub(channel)
        got = stub.GetEvaluation(pb.GetEvaluationRequest(evaluation_id=responses[0].evaluation_id)).evaluation
    assert got.request.inputs["personnel"].decimal == "87.720" and got.response.values["block"] == "92.9"
    assert got.sequence == 1
    assert main(["audit", "verify", "--audit", pg_url]) == 0
    assert "4 record(s) checked" in capsys.readouterr().out
    assert main(["audit", "replay", responses[1].evaluation_id, "--audit", pg_url, "--rules", str(RULES)]) == 0
    capsys.readouterr()

    table = pg_url.rsplit("table=", 1)[1]
    with psycopg.connect(pg_url.split("?")[0], autocommit=True) as db:
        db.execute(f'UPDATE "{table}" SET methodology = %s WHERE evaluation_id = %s', ("forged", responses[1].evaluation_id))
    assert main(["audit", "verify", "--audit", pg_url]) == 1
    out = capsys.readouterr().out
    assert f"record 2 ({responses[1].evaluation_id}): its content does not match its hash" in out

    with psycopg.connect(pg_url.split("?")[0], autocommit=True) as db:
        db.execute(f'DELETE FROM "{table}" WHERE sequence = 3')
    report = verify(open_store(pg_url))
    assert {p.sequence for p in report.problems} == {2, 4}


def test_postgres_two_writers_share_one_chain(pg_url):
    one, two = AuditWriter(open_store(pg_url), batch_size=3), AuditWriter(open_store(pg_url), batch_size=4)
    for n in range(0, 40, 2):
        one.submit([record(n)])
        two.submit([record(n + 1)])
    one.close()
    two.close()
    report = verify(open_store(pg_url))
    assert report.ok and report.records == 40


def test_unreachable_postgres_is_a_clear_error(capsys):
    assert main(["audit", "verify", "--audit", "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"]) == 2
    assert "cannot connect to the audit database" in capsys.readouterr().err


@pytest.mark.parametrize("url", ["sqlite:///x.db?table=drop table", "mysql://x"])
def test_bad_audit_urls(url, capsys):
    assert main(["audit", "verify", "--audit", url]) == 2


# ------------------------------------------------------------------------------ the writer process


def test_a_pending_evaluation_is_readable_before_it_is_written(start_server, tmp_path):
    server = start_server()
    with channel_to(server) as channel:
        stub = pb_grpc.ScoringServiceStub(channel)
        stub.Evaluate(acceptance_request("warm-up"))  # the writer process is up, the table exists
        assert server.audit.flush(20)
        blocker = sqlite3.connect(tmp_path / "audit.db", isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # the writer must wait for this lock
        try:
            batch = stub.EvaluateBatch(pb.EvaluateBatchRequest(items=[acceptance_request("p1"), acceptance_request("p2")]))
            pending = stub.GetEvaluation(pb.GetEvaluationRequest(evaluation_id=batch.items[1].evaluation_id)).evaluation
            assert pending.sequence == 0 and pending.record_hash == "", "not written yet: no place in the chain"
            assert pending.request.request_id == "p2" and pending.response.values["block"] == "92.9"
            assert not server.audit.flush(0.3)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert server.audit.flush(20)
        written = stub.GetEvaluation(pb.GetEvaluationRequest(evaluation_id=batch.items[1].evaluation_id)).evaluation
        assert written.sequence >= 2 and written.request == pending.request and written.response == pending.response


def test_batch_records_keep_each_item_as_received(start_server):
    server = start_server()
    items = [acceptance_request(f"r{i}", inputs={"personnel": pb.Value(decimal=f"8{i}.50"), "it": pb.Value(decimal="97.98")})
             for i in range(3)]
    sent = pb.EvaluateBatchRequest(items=items).SerializeToString()
    with channel_to(server) as channel:  # the very bytes sent, to compare with
        response = pb.EvaluateBatchResponse.FromString(
            channel.unary_unary("/bagalau.v1.ScoringService/EvaluateBatch")(sent))
    assert server.audit.flush(20)
    store = open_store(server.settings.audit)
    from service.views import BytesList

    for item, item_bytes, answer in zip(items, BytesList.FromString(sent).items, response.items):
        record = store.get(answer.evaluation_id)
        assert pb.EvaluateRequest.FromString(record.request) == item
        assert record.request == item_bytes, "the item's bytes, as the client encoded them"
        assert pb.EvaluateResponse.FromString(record.response) == answer
        assert (record.request_id, record.subject_id, record.subject_kind, record.methodology) == (
            item.request_id, item.subject.id, item.subject.kind, "org-development")


def test_writer_process_is_restarted_and_nothing_is_lost_or_doubled(tmp_path):
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    writer = AuditWriter(open_store(url), batch_size=4)
    try:
        writer.submit([record(n) for n in range(10)])
        assert writer.flush(20)
        first = writer._proc
        first.kill()  # as if the process crashed
        first.wait()
        for n in range(10, 30):
            writer.submit([record(n)])
        assert writer.flush(30), "everything is written by the process started again"
        assert writer._proc is not first
    finally:
        writer.close()
    report = verify(open_store(url))
    assert report.ok and report.records == 30


def test_writer_process_skips_records_already_written(tmp_path):
    """Entries sent again after a restart (the process died between its commit and its report)."""
    import io

    from service.audit_worker import Worker

    url = f"sqlite:///{tmp_path / 'again.db'}"
    out = io.BytesIO()
    worker = Worker(url, 100, out)
    rows = [record(n).row() for n in range(5)]
    worker.write([("records", 1, rows[:3])], stopping=False)
    worker.write([("records", 1, rows[:3]), ("records", 2, rows[3:])], stopping=False)
    worker.store.close()
    store = open_store(url)
    assert [r.evaluation_id for r in store.scan()] == [f"id-{n}" for n in range(5)]
    assert verify(store).ok
