"""structlog set-up: JSON lines in production (stderr not a terminal), readable lines in a terminal.

Per-call context (request id, method, peer) is bound with ``structlog.contextvars`` by the call
interceptor, so every line logged while serving a call carries it.
"""

from __future__ import annotations

import logging
import sys

import structlog

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is at the time; a closed stream drops the line
    rather than breaking the thread that logged (background threads outlive test captures)."""

    def msg(self, message: str) -> None:
        try:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()
        except (ValueError, OSError):
            pass

    log = debug = info = warn = warning = error = err = critical = exception = fatal = failure = msg


def _stderr_logger_factory(*_args) -> StderrLogger:
    return StderrLogger()


def configure(log_format: str = "auto", level: str = "info", stream=None) -> None:
    """``stream``: where to write; default standard error, looked up at each write."""
    target = stream or sys.stderr
    json_lines = log_format == "json" or (log_format == "auto" and not _isatty(target))
    renderer = structlog.processors.JSONRenderer() if json_lines else structlog.dev.ConsoleRenderer(colors=_isatty(target))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=stream) if stream is not None else _stderr_logger_factory,
        cache_logger_on_first_use=False,
    )


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def get_logger(name: str = "bagalau"):
    return structlog.get_logger(name)
