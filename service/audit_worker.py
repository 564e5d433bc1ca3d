"""The audit writer's own process: builds, chains and writes audit records (``python -m service.audit_worker``).

Started by ``AuditWriter`` (service/audit.py) with the first records to write, never by hand.
Cutting a call's messages into records, hashing them into the chain and inserting them costs
about as much CPU as scoring; in a thread of the service it would take that time from scoring
under Python's global interpreter lock. In this process it runs beside it, on another core.

Protocol, over the pipes (one pickle a message):

- in, on standard input: first ``("open", url, batch_size)``; then
  ``("calls", seq, count, recorded_at, caller, peer, kind, request, response)``: one call's
  request as received and response as returned (``kind`` "batch": an EvaluateBatchRequest and
  its EvaluateBatchResponse; "one": an EvaluateRequest and its EvaluateResponse), of which every
  item answered without an error is recorded (``count`` of them, as the service counted; see
  ``recording.records_from_call``); ``("records", seq, [AuditRecord fields…])``: records built
  by the service; ``("stop",)``: write everything, then exit (so does the end of standard input).
- out, on standard output: ``("written", [seq…], records)`` after each committed transaction;
  ``("failed", error)`` for each failed attempt (retried with back-off); ``("lost", [seq…],
  records)`` when, at the stop, a batch still cannot be written after 5 attempts.

Entries sent again after a restart are written only where missing (a record whose evaluation id
is in the log already is skipped). Logs go to standard error, like the service's. SIGINT and
SIGTERM are ignored: the service stops this process by closing its input, after its own calls
have finished, so that nothing is lost.
"""

from __future__ import annotations

import argparse
import os
import queue
import signal
import sys
import threading
import time

from .audit import AuditError, AuditRecord, open_store, read_frame, write_frame
from .log import configure, get_logger
from .recording import records_from_call

log = get_logger("bagalau.audit")
STOP_ATTEMPTS = 5


def _is_duplicate(exc: BaseException) -> bool:
    """A record with this evaluation id is already in the log (written before a restart)."""
    return type(exc).__name__ in ("IntegrityError", "UniqueViolation")


class Worker:
    def __init__(self, url: str, batch_size: int, out):
        self.url = url
        self.batch_size = batch_size
        self.out = out
        self.store = None
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()

    def send(self, message: tuple) -> None:
        write_frame(self.out, message)

    def read_input(self, stream) -> None:
        """Frames from standard input to the inbox; ``None`` at the end."""
        try:
            while True:
                message = read_frame(stream)
                if message is None or message[0] == "stop":
                    break
                self.inbox.put(message)
        finally:
            self.inbox.put(None)

    def run(self) -> None:
        stopping = False
        while not stopping:
            entry = self.inbox.get()
            entries: list[tuple] = []
            size = 0
            while True:
                if entry is None:
                    stopping = True
                    break
                entries.append(entry)
                size += len(entry[2]) if entry[0] == "records" else entry[2]
                if size >= self.batch_size:
                    break
                try:
                    entry = self.inbox.get_nowait()
                except queue.Empty:
                    break
            if entries:
                self.write(entries, stopping)

    def _records(self, entries: list[tuple]) -> list[AuditRecord]:
        records: list[AuditRecord] = []
        for entry in entries:
            try:
                if entry[0] == "records":
                    records.extend(AuditRecord(*fields) for fields in entry[2])
                else:
                    records.extend(records_from_call(*entry[3:]))
            except Exception:  # noqa: BLE001 - a call that cannot be recorded must not stop the others
                log.exception("audit records could not be built; they are lost", seq=entry[1])
        return records

    def _open(self):
        if self.store is None:
            self.store = open_store(self.url)
        return self.store

    def write(self, entries: list[tuple], stopping: bool) -> None:
        seqs = [entry[1] for entry in entries]
        records = self._records(entries)
        delay, attempts = 0.2, 0
        while records:
            try:
                self._open().append(records)
                break
            except Exception as e:  # noqa: BLE001 - keep the records and retry
                if _is_duplicate(e) and self.store is not None:
                    kept = self._not_yet_written(records)
                    if len(kept) < len(records):  # sent again after a restart: write only what is missing
                        records = kept
                        continue
                attempts += 1
                self.send(("failed", type(e).__name__))
                log.error("writing audit records failed; retrying", records=len(records), error=type(e).__name__,
                          detail=str(e)[:500], attempt=attempts)
                if isinstance(e, AuditError):
                    self.store = None
                if stopping and attempts >= STOP_ATTEMPTS:
                    log.critical("audit records lost at stop", evaluation_ids=[r.evaluation_id for r in records])
                    self.send(("lost", seqs, len(records)))
                    return
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.send(("written", seqs, len(records)))

    def _not_yet_written(self, records: list[AuditRecord]) -> list[AuditRecord]:
        seen: set[str] = set()
        kept = []
        for r in records:
            if r.evaluation_id in seen or self.store.get(r.evaluation_id) is not None:
                continue
            seen.add(r.evaluation_id)
            kept.append(r)
        return kept


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m service.audit_worker", description="the audit log's writer process")
    p.add_argument("--log-format", default="auto")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)
    # Frames go out on the original standard output; anything else printed goes to standard error.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    configure(args.log_format, args.log_level)
    stdin = sys.stdin.buffer
    first = read_frame(stdin)  # ("open", url, batch size): the URL may hold a password, so not in argv
    if first is None or first[0] != "open":
        return 0
    worker = Worker(first[1], first[2], out)
    reader = threading.Thread(target=worker.read_input, args=(stdin,), name="bagalau-audit-input", daemon=True)
    reader.start()
    worker.run()
    if worker.store is not None:
        worker.store.close()
    out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
