"""The audit log: every evaluation, hash-chained, written in batches by a writer process of its own.

Each record holds the request exactly as received and the response exactly as returned, as
their protobuf encodings (decimals are strings there, never floats;
``bagalau audit show`` and GetEvaluation render them as JSON). Records form a chain:
``record_hash = sha256(prev_hash + "\\n" + canonical encoding of the record)``, the canonical
encoding holding every field, sequence number included (see ``AuditRecord.canonical``), so an
edited, deleted or reordered record breaks the chain and ``verify`` names it. (Deleting the
newest records leaves no gap; ``verify`` prints the head — sequence and hash — so that it can be
written down elsewhere and compared later.)

Stores: SQLite in WAL mode (``sqlite:///var/audit.db``; four slashes for an absolute path) and
PostgreSQL (``postgresql://user@host/db``). Both take ``?table=NAME`` (default ``audit_log``).
The chain is extended under a lock held in the database (``BEGIN IMMEDIATE`` / an advisory
transaction lock), so several service processes can share one log.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import queue
import re
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .log import get_logger

log = get_logger("bagalau.audit")

GENESIS_HASH = "0" * 64
DEFAULT_TABLE = "audit_log"
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class AuditError(Exception):
    """The audit log cannot be opened or read (bad URL, unreachable database)."""


def new_evaluation_ids(count: int) -> list[str]:
    """UUIDv7 strings: time-ordered, so new records land at the end of the index. Made in bulk for batches."""
    ms = f"{(time.time_ns() // 1_000_000) & 0xFFFFFFFFFFFF:012x}"
    head = f"{ms[:8]}-{ms[8:]}-7"  # the time, then the version
    rand = os.urandom(10 * count).hex()  # 20 hex digits an id: 3 + the variant's + 3 + 12
    variant = _VARIANT
    return [f"{head}{rand[i:i + 3]}-{variant[rand[i + 3]]}{rand[i + 4:i + 7]}-{rand[i + 7:i + 19]}"
            for i in range(0, 20 * count, 20)]


_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}


def new_evaluation_id() -> str:
    return new_evaluation_ids(1)[0]


@dataclass(slots=True)
class AuditRecord:
    evaluation_id: str
    recorded_at: str  # ISO 8601, UTC, microseconds
    caller: str  # client certificate identity under mutual TLS, else ""
    peer: str
    request_id: str
    methodology: str
    version: str
    content_hash: str
    subject_id: str
    subject_kind: str
    request: bytes  # the EvaluateRequest's protobuf encoding, as received
    response: bytes  # the EvaluateResponse's protobuf encoding, as returned
    sequence: int = 0
    prev_hash: str = ""
    record_hash: str = ""

    def canonical(self) -> bytes:
        """Every field but the two hashes: a JSON array of the text fields and the two lengths, a
        newline, then the request and response encodings. (JSON escapes newlines, so the header
        ends at the first one; the lengths delimit the rest.) The array is what ``json.dumps(...,
        ensure_ascii=False, separators=(",", ":"))`` gives, written out: twice as fast, and the
        audit writer hashes every record (tests/service/test_service_audit.py checks that they agree)."""
        q = _JSON_STRING
        header = (f"[{self.sequence:d},{q(self.evaluation_id)},{q(self.recorded_at)},{q(self.caller)},{q(self.peer)},"
                  f"{q(self.request_id)},{q(self.methodology)},{q(self.version)},{q(self.content_hash)},"
                  f"{q(self.subject_id)},{q(self.subject_kind)},{len(self.request):d},{len(self.response):d}]")
        return header.encode("utf-8") + b"\n" + self.request + self.response

    def chain_hash(self, prev_hash: str) -> str:
        return hashlib.sha256(prev_hash.encode("ascii", "replace") + b"\n" + self.canonical()).hexdigest()

    def row(self) -> tuple:
        """The column values, in ``COLUMNS`` order."""
        return (self.evaluation_id, self.recorded_at, self.caller, self.peer, self.request_id, self.methodology, self.version,
                self.content_hash, self.subject_id, self.subject_kind, self.request, self.response, self.sequence,
                self.prev_hash, self.record_hash)

    def seal(self, sequence: int, prev_hash: str) -> None:
        self.sequence = sequence
        self.prev_hash = prev_hash
        self.record_hash = self.chain_hash(prev_hash)


_JSON_STRING = json.encoder.encode_basestring  # a str as JSON does it with ensure_ascii=False (the C version)
COLUMNS = [f.name for f in fields(AuditRecord)]
BINARY = ("request", "response")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# ------------------------------------------------------------------------------ stores


class AuditStore:
    """Where records are kept. ``append`` seals and writes a batch in one transaction."""

    url: str

    def append(self, records: list[AuditRecord]) -> None:
        raise NotImplementedError

    def get(self, evaluation_id: str) -> AuditRecord | None:
        raise NotImplementedError

    def scan(self) -> Iterator[AuditRecord]:
        """Every record, by sequence."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def worker_url(self) -> str:
        """The URL another process opens this store with."""
        return self.url


def _split_table(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    table = next((v for k, v in query if k == "table"), DEFAULT_TABLE)
    if not _TABLE_NAME.match(table):
        raise AuditError(f"audit table name {table!r} must be letters, digits and _ (at most 63)")
    rest = urlencode([(k, v) for k, v in query if k != "table"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment)), table


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return url


def sqlite_path(url: str) -> Path:
    """sqlite:///var/a.db -> var/a.db (relative to the current directory); sqlite:////abs/a.db -> /abs/a.db."""
    _split_table(url)  # validates the table name
    return Path(url[len("sqlite:///"):].split("?", 1)[0] or "audit.db")


def open_store(url: str) -> AuditStore:
    if url.startswith("sqlite:///"):
        return SQLiteStore(url)
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresStore(url)
    raise AuditError(f"{url!r}: expected sqlite:///PATH or postgresql://USER@HOST/DB")


class SQLiteStore(AuditStore):
    def __init__(self, url: str):
        self.url = url
        self.table = _split_table(url)[1]
        self.path = sqlite_path(url)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write = self._connect()
            self._write.execute("PRAGMA journal_mode=WAL")
            self._write.execute("PRAGMA synchronous=NORMAL")
            cols = ", ".join(f"{c} {'BLOB' if c in BINARY else 'TEXT'} NOT NULL" for c in COLUMNS if c != "sequence")
            self._write.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (sequence INTEGER PRIMARY KEY, {cols})")
            self._write.execute(f"CREATE UNIQUE INDEX IF NOT EXISTS {self.table}_evaluation_id ON {self.table} (evaluation_id)")
        except (sqlite3.Error, OSError) as e:
            raise AuditError(f"cannot open the audit log {self.path}: {e}") from None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)

    def worker_url(self) -> str:
        return f"sqlite:///{self.path.resolve()}?table={self.table}"

    def append(self, records: list[AuditRecord]) -> None:
        insert = f"INSERT INTO {self.table} ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        with self._lock:
            db = self._write
            db.execute("BEGIN IMMEDIATE")  # the write lock: no other writer can extend the chain meanwhile
            try:
                row = db.execute(f"SELECT sequence, record_hash FROM {self.table} ORDER BY sequence DESC LIMIT 1").fetchone()
                seq, prev = (row[0], row[1]) if row else (0, GENESIS_HASH)
                for r in records:
                    seq += 1
                    r.seal(seq, prev)
                    prev = r.record_hash
                db.executemany(insert, [r.row() for r in records])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def _read(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def get(self, evaluation_id: str) -> AuditRecord | None:
        db = self._read()
        try:
            row = db.execute(f"SELECT {', '.join(COLUMNS)} FROM {self.table} WHERE evaluation_id = ?", (evaluation_id,)).fetchone()
        finally:
            db.close()
        return _record(tuple(row)) if row else None

    def scan(self) -> Iterator[AuditRecord]:
        db = self._read()
        try:
            for row in db.execute(f"SELECT {', '.join(COLUMNS)} FROM {self.table} ORDER BY sequence"):
                yield _record(tuple(row))
        finally:
            db.close()

    def close(self) -> None:
        self._write.close()


def _record(row) -> AuditRecord:
    return AuditRecord(*(bytes(v) if c in BINARY else v for c, v in zip(COLUMNS, row)))


class PostgresStore(AuditStore):
    def __init__(self, url: str):
        import psycopg
        from psycopg import sql

        self.url = url
        self._psycopg, self._sql = psycopg, sql
        self.conninfo, self.table = _split_table(url)
        self._ident = sql.Identifier(self.table)
        self._lock_key = int.from_bytes(hashlib.sha256(f"bagalau-audit:{self.table}".encode()).digest()[:8], "big", signed=True)
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._write_db = None
        self._read_db = None
        cols = sql.SQL(", ").join(sql.SQL("{} {} NOT NULL").format(sql.Identifier(c), sql.SQL("BYTEA" if c in BINARY else "TEXT"))
                                  for c in COLUMNS if c != "sequence")
        with self._write_lock:
            db = self._writer()
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
                db.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} (sequence BIGINT PRIMARY KEY, {})").format(self._ident, cols))
                db.execute(sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} (evaluation_id)").format(
                    sql.Identifier(f"{self.table}_evaluation_id"), self._ident))

    def _connect(self):
        try:
            return self._psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10)
        except self._psycopg.Error as e:
            raise AuditError(f"cannot connect to the audit database {_redact(self.conninfo)}: {e}") from None

    def _writer(self):
        if self._write_db is None or self._write_db.closed:
            self._write_db = self._connect()
        return self._write_db

    def append(self, records: list[AuditRecord]) -> None:
        sql = self._sql
        insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            self._ident, sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS)))
        with self._write_lock:
            db = self._writer()
            try:
                with db.transaction():
                    db.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))  # one writer extends the chain
                    row = db.execute(sql.SQL("SELECT sequence, record_hash FROM {} ORDER BY sequence DESC LIMIT 1")
                                     .format(self._ident)).fetchone()
                    seq, prev = (row[0], row[1]) if row else (0, GENESIS_HASH)
                    for r in records:
                        seq += 1
                        r.seal(seq, prev)
                        prev = r.record_hash
                    with db.cursor() as cur:
                        cur.executemany(insert, [r.row() for r in records])
            except self._psycopg.OperationalError:
                db.close()  # reconnect on the next attempt
                raise

    def _query(self, query, params=()):
        with self._read_lock:
            if self._read_db is None or self._read_db.closed:
                self._read_db = self._connect()
            try:
                return self._read_db.execute(query, params).fetchall()
            except self._psycopg.OperationalError:
                self._read_db.close()
                raise

    def get(self, evaluation_id: str) -> AuditRecord | None:
        sql = self._sql
        rows = self._query(sql.SQL("SELECT {} FROM {} WHERE evaluation_id = %s").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), self._ident), (evaluation_id,))
        return _record(rows[0]) if rows else None

    def scan(self) -> Iterator[AuditRecord]:
        sql = self._sql
        db = self._connect()
        try:
            with db.transaction(), db.cursor(name="bagalau_audit_scan") as cur:
                cur.itersize = 2000
                cur.execute(sql.SQL("SELECT {} FROM {} ORDER BY sequence").format(
                    sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), self._ident))
                for row in cur:
                    yield _record(row)
        finally:
            db.close()

    def drop(self) -> None:
        """Remove the table (tests)."""
        with self._write_lock:
            self._writer().execute(self._sql.SQL("DROP TABLE IF EXISTS {}").format(self._ident))

    def close(self) -> None:
        for db in (self._write_db, self._read_db):
            if db is not None and not db.closed:
                db.close()


# ------------------------------------------------------------------------------ verification


@dataclass
class ChainProblem:
    sequence: int
    evaluation_id: str
    message: str

    def __str__(self) -> str:
        return f"record {self.sequence} ({self.evaluation_id}): {self.message}"


@dataclass
class VerifyReport:
    records: int
    head_sequence: int
    head_hash: str
    problems: list[ChainProblem]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(store: AuditStore) -> VerifyReport:
    """Walk the chain; report every record whose content, link or position is wrong."""
    problems: list[ChainProblem] = []
    prev_hash, expected, count, last = GENESIS_HASH, 1, 0, None
    for r in store.scan():
        count += 1
        if r.sequence != expected:
            missing = f"record {expected}" if r.sequence == expected + 1 else f"records {expected}–{r.sequence - 1}"
            problems.append(ChainProblem(r.sequence, r.evaluation_id, f"{missing} before it {'is' if r.sequence == expected + 1 else 'are'} missing (deleted)"))
        if r.prev_hash != prev_hash:
            problems.append(ChainProblem(r.sequence, r.evaluation_id, "does not link to the record before it: that record "
                                         "was edited or deleted, or this record's prev_hash was changed"))
        if r.chain_hash(r.prev_hash) != r.record_hash:
            problems.append(ChainProblem(r.sequence, r.evaluation_id, "its content does not match its hash: the record was edited"))
        prev_hash, expected, last = r.record_hash, r.sequence + 1, r
    return VerifyReport(count, last.sequence if last else 0, last.record_hash if last else GENESIS_HASH, problems)


# ------------------------------------------------------------------------------ the writer

PIPE_BYTES = 1 << 20  # Linux's default limit for an unprivileged process (/proc/sys/fs/pipe-max-size)


def _widen_pipe(stream) -> None:
    """Let a whole batch's message (a few hundred KB) into the pipe at once: with the default 64 KB,
    the sending thread wakes for every chunk the writer process reads, and each wake-up takes
    Python's interpreter lock from the threads that score. Linux only; elsewhere, as it was."""
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
    except (ImportError, OSError, ValueError):
        pass


def write_frame(stream, message: tuple) -> None:
    """A message for the pipes between the service and its audit writer process: a pickle, which
    delimits itself. Pickled straight into the stream: the request and response of a batch (a few
    hundred KB) are then written as they are, where building the pickle in memory first would
    copy them, growing its buffer as it goes (about 100 times slower)."""
    pickle.dump(message, stream, protocol=pickle.HIGHEST_PROTOCOL)
    stream.flush()


def read_frame(stream) -> tuple | None:
    """The next message, or None at the end of the stream (or where it was cut short)."""
    try:
        return pickle.load(stream)
    except (EOFError, pickle.UnpicklingError):
        return None


class AuditWriter:
    """Hands evaluations to the audit writer's own process, which writes them in batches.

    Scoring threads only queue what they have (``submit_call``: the call's request as received
    and response as returned, one entry per call; waiting only when ``queue_size`` records are
    already unwritten). A sender thread pipes them to the writer process (``python -m
    service.audit_worker``), which builds the records, chains them and writes whatever has queued
    up, up to about ``batch_size`` records, in one transaction; a failed write is retried with
    back-off, so records are not dropped while the database is away. The records' building,
    hashing and inserting thus use another CPU core instead of taking the interpreter lock from
    scoring. An evaluation stays readable through ``pending`` until the process reports it
    written. Should the process die, it is started again and sent everything not yet reported
    written (records already in the log are not written twice). ``close`` writes everything
    still queued and stops the process.
    """

    _STOP = object()

    def __init__(self, store: AuditStore, batch_size: int = 500, queue_size: int = 100_000,
                 log_format: str = "auto", log_level: str = "info"):
        from . import metrics  # here, not at the top: the writer process imports this module too

        self._metrics = metrics
        self.store = store  # this process's connection: reads (GetEvaluation); the writer process has its own
        self.batch_size = batch_size
        self.queue_size = queue_size
        self._log_args = ["--log-format", log_format, "--log-level", log_level]
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # records were written, or the writer is closing
        self._io = threading.Lock()  # the writer process and its input pipe
        self._pending: dict[str, object] = {}  # evaluation_id -> its entry's number (or its record), until written
        self._inflight: dict[int, _Entry] = {}  # entry number -> entry, in order, until written
        self._unwritten = 0
        self._seq = 0
        self._closing = False
        self._stop_sent = False
        self._abandoned = False
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._proc: subprocess.Popen | None = None  # started with the first records to write
        self._reader = threading.Thread(target=self._read_loop, name="bagalau-audit-acks", daemon=True)
        self._sender = threading.Thread(target=self._send_loop, name="bagalau-audit-sender", daemon=True)
        self._sender.start()

    # ---------------------------------------------------------------- queueing
    def submit(self, items: list) -> None:
        """Items are AuditRecords, or have ``evaluation_id`` and ``to_record() -> AuditRecord``."""
        if items:
            self._enqueue([item.evaluation_id for item in items], ("records", items))

    def submit_call(self, evaluation_ids: list[str], recorded_at: str, caller: str, peer: str, kind: str,
                    request: bytes, response: bytes) -> None:
        """One call's successful evaluations, ``evaluation_ids``, from the call's request as received
        and response as returned: for ``kind`` "batch" an EvaluateBatchRequest and EvaluateBatchResponse
        (items answered with an error are not recorded), for "one" an EvaluateRequest and EvaluateResponse.
        The writer process builds the records (``recording.records_from_call``)."""
        if evaluation_ids:
            self._enqueue(evaluation_ids, ("calls", recorded_at, caller, peer, kind, request, response))

    def _enqueue(self, evaluation_ids: list[str], payload: tuple) -> None:
        count = len(evaluation_ids)
        with self._changed:
            self._changed.wait_for(lambda: self._closing or self._unwritten == 0
                                   or self._unwritten + count <= self.queue_size)
            if self._closing:
                raise AuditError("the audit log is closed")
            self._seq += 1
            seq = self._seq
            if payload[0] == "records":
                self._pending.update(zip(evaluation_ids, payload[1]))
            else:
                self._pending.update(dict.fromkeys(evaluation_ids, seq))
            self._inflight[seq] = _Entry(evaluation_ids, payload)
            self._unwritten += count
        self._metrics.AUDIT_PENDING.inc(count)
        self._outbox.put(seq)

    def pending(self, evaluation_id: str):
        """The evaluation, not yet written: an AuditRecord without a place in the chain (or what was
        submitted); None when it is not waiting."""
        with self._lock:
            found = self._pending.get(evaluation_id)
            entry = self._inflight.get(found) if isinstance(found, int) else None
        if entry is None:
            return found
        from .recording import records_from_call

        return next((r for r in records_from_call(*entry.payload[1:]) if r.evaluation_id == evaluation_id), None)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is written. False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._unwritten == 0, timeout)

    def close(self, timeout: float | None = 60) -> None:
        with self._changed:
            if self._closing:
                return
            self._closing = True
            self._changed.notify_all()
        self._outbox.put(self._STOP)
        deadline = None if timeout is None else time.monotonic() + timeout
        self._sender.join(timeout)
        if self._reader.ident is not None:  # the writer process was started
            self._reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if self._reader.is_alive():
            log.error("audit records could not all be written before the stop", unwritten=self._unwritten)
            with self._io:
                self._abandoned = True
                self._proc.kill()
            self._reader.join(5)
        self.store.close()

    # ---------------------------------------------------------------- the writer process
    def _start_worker(self) -> subprocess.Popen:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[1])  # the folder holding service/
        env["PYTHONPATH"] = package_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            proc = subprocess.Popen([sys.executable, "-m", "service.audit_worker", *self._log_args],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, close_fds=True)
        except OSError as e:
            raise AuditError(f"cannot start the audit writer process: {e}") from None
        _widen_pipe(proc.stdin)
        # the URL goes through the pipe, not the command line, where other users could read a password
        self._write(proc, ("open", self.store.worker_url(), self.batch_size))
        return proc

    @staticmethod
    def _write(proc: subprocess.Popen, message: tuple) -> None:
        try:
            write_frame(proc.stdin, message)
        except (OSError, ValueError):  # the process is gone: the reader restarts it and sends again
            pass

    @staticmethod
    def _message(seq: int, entry: "_Entry") -> tuple:
        """The message for an entry, in plain values (so that writing it cannot fail half-way)."""
        payload = entry.payload
        if payload[0] == "records":
            rows = [(item if isinstance(item, AuditRecord) else item.to_record()).row() for item in payload[1]]
            return ("records", seq, rows)
        return ("calls", seq, len(entry.evaluation_ids), *payload[1:])

    def _send_loop(self) -> None:
        while True:
            seq = self._outbox.get()
            if seq is self._STOP:
                with self._io:
                    self._stop_sent = True
                    if self._proc is not None:
                        self._send_stop(self._proc)
                return
            entry = self._inflight.get(seq)
            if entry is None:
                continue
            try:
                message = self._message(seq, entry)
            except Exception:  # noqa: BLE001 - an entry that cannot be encoded must not stop the others
                log.exception("audit records could not be encoded; they are lost", records=len(entry.evaluation_ids))
                self._done([seq])
                continue
            with self._io:  # sent and marked sent at once: a restart sends again exactly what was sent
                if self._proc is None:
                    try:
                        self._proc = self._start_worker()
                    except AuditError as e:  # kept: the reader thread keeps trying
                        log.error("cannot start the audit writer process", reason=str(e))
                    self._reader.start()
                entry.message = message
                if self._proc is not None:
                    self._write(self._proc, message)

    def _send_stop(self, proc: subprocess.Popen) -> None:
        self._write(proc, ("stop",))
        try:
            proc.stdin.close()
        except OSError:
            pass

    def _read_loop(self) -> None:
        delay = 0.2
        while True:
            proc = self._proc
            message = read_frame(proc.stdout) if proc is not None else None
            if message is not None:
                delay = 0.2
                self._handle(message)
                continue
            if proc is not None:
                proc.wait()
            with self._lock:
                if self._abandoned or (self._closing and self._stop_sent and not self._inflight):
                    return
            log.error("the audit writer process ended unexpectedly; starting it again",
                      exit_code=proc.returncode if proc is not None else None, unwritten=self._unwritten)
            self._metrics.AUDIT_ERRORS.inc()
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
            with self._io:
                if self._abandoned:
                    return
                try:
                    self._proc = self._start_worker()
                except AuditError as e:
                    log.error("cannot start the audit writer process", reason=str(e))
                    continue
                for entry in list(self._inflight.values()):
                    if entry.message is not None:
                        self._write(self._proc, entry.message)
                if self._stop_sent:
                    self._send_stop(self._proc)

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "written":
            self._metrics.AUDIT_WRITTEN.inc(message[2])
            self._done(message[1])
        elif kind == "lost":
            self._done(message[1])
        elif kind == "failed":
            self._metrics.AUDIT_ERRORS.inc()

    def _done(self, seqs: list[int]) -> None:
        count = 0
        with self._changed:
            pending = self._pending
            for seq in seqs:
                entry = self._inflight.pop(seq, None)
                if entry is None:
                    continue
                for evaluation_id in entry.evaluation_ids:
                    pending.pop(evaluation_id, None)
                count += len(entry.evaluation_ids)
            self._unwritten -= count
            self._changed.notify_all()
        self._metrics.AUDIT_PENDING.dec(count)


@dataclass(slots=True)
class _Entry:
    """What one submission asked the writer process to write."""

    evaluation_ids: list[str]
    payload: tuple  # ("calls", recorded_at, caller, peer, kind, request, response) or ("records", items)
    message: tuple | None = None  # as sent to the writer process; None until sent
