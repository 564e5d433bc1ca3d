"""Per-call plumbing for every RPC: a request id, structured log context, a log line and metrics.

The request id is the caller's ``x-request-id`` metadata when sent, otherwise a new one; it is
returned in the initial metadata (``x-request-id``) and appears in every log line of the call.
"""

from __future__ import annotations

import time
import uuid

import grpc
import structlog

from . import metrics
from .log import get_logger

log = get_logger("bagalau.calls")
REQUEST_ID_HEADER = "x-request-id"
QUIET_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")  # logged at debug level only


def current_request_id() -> str:
    return structlog.contextvars.get_contextvars().get("request_id", "")


def caller_of(context: grpc.ServicerContext) -> str:
    """The client's identity from its certificate under mutual TLS (subject CN, else SAN); empty otherwise."""
    auth = context.auth_context() or {}
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        values = auth.get(key)
        if values:
            return ",".join(v.decode("utf-8", "replace") for v in values)
    return ""


class CallInterceptor(grpc.ServerInterceptor):
    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        short = method.rsplit("/", 1)[-1]
        sent_id = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == REQUEST_ID_HEADER:
                sent_id = str(value)[:128]
        quiet = method.startswith(QUIET_SERVICES)

        def begin(context):
            request_id = sent_id or uuid.uuid4().hex
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(request_id=request_id, method=short)
            try:
                context.send_initial_metadata(((REQUEST_ID_HEADER, request_id),))
            except ValueError:  # metadata already sent (cannot happen before the handler runs)
                pass
            return time.perf_counter()

        def end(context, started, failed):
            elapsed = time.perf_counter() - started
            code = context.code()
            name = code.name if isinstance(code, grpc.StatusCode) else ("UNKNOWN" if failed else "OK")
            metrics.RPC_CALLS.labels(short, name).inc()
            metrics.RPC_LATENCY.labels(short).observe(elapsed)
            (log.debug if quiet else log.info)("rpc", code=name, ms=round(elapsed * 1000, 3), peer=context.peer())
            structlog.contextvars.clear_contextvars()

        def unary(behavior):
            def wrapped(request, context):
                started = begin(context)
                failed = True
                try:
                    response = behavior(request, context)
                    failed = False
                    return response
                finally:
                    end(context, started, failed)
            return wrapped

        def streaming(behavior):
            def wrapped(request, context):
                started = begin(context)
                failed = True
                try:
                    yield from behavior(request, context)
                    failed = False
                finally:
                    end(context, started, failed)
            return wrapped

        if handler.unary_unary:
            return handler._replace(unary_unary=unary(handler.unary_unary))
        if handler.stream_unary:
            return handler._replace(stream_unary=unary(handler.stream_unary))
        if handler.unary_stream:
            return handler._replace(unary_stream=streaming(handler.unary_stream))
        if handler.stream_stream:
            return handler._replace(stream_stream=streaming(handler.stream_stream))
        return handler
