"""The rule set being served, and its hot reload.

A background thread watches the rules folder. After a burst of changes settles it compiles the
whole folder into a new ``Registry`` and swaps it in with one assignment, so a call sees either
the old set or the new one, never a mix (each call reads ``current`` once). A change that does
not compile is refused: its diagnostics are logged and the last good set keeps serving.

Besides file events, the watcher compares a fingerprint of the folder (path, size and mtime of
every rule file) about once a second, so a change made before the watch was set up, or an event
the operating system dropped, is still picked up.
"""

from __future__ import annotations

import threading
from pathlib import Path

from dsl.errors import CompileFailed
from dsl.registry import Registry, load_registry

from . import metrics
from .log import get_logger

log = get_logger("bagalau.rules")
WATCHED_SUFFIXES = (".bgl", "versions.lock")


class RuleSet:
    """Holds the current ``Registry``; reloads it from the folder on demand or when files change."""

    def __init__(self, root: Path, registry: Registry | None = None):
        """``registry``: the folder already compiled (saves compiling it twice); else it is compiled here."""
        self.root = Path(root)
        self._fingerprint = self.fingerprint()  # taken before compiling: later edits count as changes
        self.current: Registry = registry if registry is not None else load_registry(self.root)  # CompileFailed: nothing to serve
        self.attempts = 0  # reload attempts finished (applied, unchanged or refused)
        self.last_outcome = "initial"
        self.last_diagnostics: list = []
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        metrics.set_rules_served(self.current.content_hash)
        log.info("rules loaded", folder=str(self.root), content_hash=self.current.content_hash,
                 versions=[f"{v.methodology}@{v.version}" for v in self.current])

    # ---------------------------------------------------------------- reload
    def reload(self) -> str:
        """Compile the folder again; swap the result in if it compiles. Returns applied, unchanged or refused."""
        self._fingerprint = self.fingerprint()
        try:
            fresh = load_registry(self.root)
        except CompileFailed as e:
            errors = [d for d in e.diagnostics if d.severity == "error"]
            outcome = "refused"
            self.last_diagnostics = errors
            log.error("rules change refused: it does not compile; still serving the last good rule set",
                      content_hash=self.current.content_hash, errors=len(errors),
                      diagnostics=[d.format() for d in errors[:50]])
        except Exception:  # noqa: BLE001 - a reload must never take the service down
            outcome = "refused"
            log.exception("rules reload failed; still serving the last good rule set", content_hash=self.current.content_hash)
        else:
            self.last_diagnostics = []
            old = self.current.content_hash
            self.current = fresh  # the atomic swap (even when unchanged: file paths may have moved)
            if fresh.content_hash == old:
                outcome = "unchanged"
                log.info("rules folder changed; the rule set is the same", content_hash=fresh.content_hash)
            else:
                outcome = "applied"
                metrics.set_rules_served(fresh.content_hash)
                log.info("rules reloaded", content_hash=fresh.content_hash, previous_content_hash=old,
                         versions=[f"{v.methodology}@{v.version}" for v in fresh])
        metrics.RELOADS.labels(outcome).inc()
        with self._changed:
            self.attempts += 1
            self.last_outcome = outcome
            self._changed.notify_all()
        return outcome

    def fingerprint(self) -> tuple:
        files = []
        try:
            for path in sorted(self.root.rglob("*")):
                if path.name.endswith(WATCHED_SUFFIXES):
                    try:
                        st = path.stat()
                    except OSError:
                        continue
                    files.append((str(path), st.st_size, st.st_mtime_ns))
        except OSError:
            return ()
        return tuple(files)

    def wait_for_attempts(self, count: int, timeout: float) -> bool:
        """Block until ``count`` reloads have finished (for tests and tools); False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.attempts >= count, timeout)

    # ---------------------------------------------------------------- watching
    def watch(self, debounce_ms: int = 300, force_polling: bool = False) -> None:
        self._thread = threading.Thread(target=self._watch_loop, args=(debounce_ms, force_polling),
                                        name="bagalau-rules-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _watch_loop(self, debounce_ms: int, force_polling: bool) -> None:
        from watchfiles import watch

        def relevant(_change, path: str) -> bool:
            return path.endswith(WATCHED_SUFFIXES) or Path(path).suffix == ""  # files, or a folder added/removed

        log.info("watching the rules folder", folder=str(self.root), polling=force_polling)
        while not self._stop.is_set():
            try:
                for changes in watch(self.root, watch_filter=relevant, debounce=debounce_ms, step=50,
                                     stop_event=self._stop, rust_timeout=1000, yield_on_timeout=True,
                                     force_polling=force_polling or None, raise_interrupt=False):
                    if changes or self.fingerprint() != self._fingerprint:
                        self.reload()
            except Exception:  # noqa: BLE001 - e.g. the folder vanished, or inotify is unavailable
                log.exception("watching the rules folder failed; polling it instead", folder=str(self.root))
                force_polling = True
                self._stop.wait(1.0)
            else:
                if not self._stop.is_set():  # watch() ends when the folder is gone: wait for it to return
                    self._stop.wait(1.0)
        log.debug("stopped watching the rules folder")
