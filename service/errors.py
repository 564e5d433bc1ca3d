"""One mapping from library errors to gRPC statuses, used by every RPC and by batch items.

INVALID_ARGUMENT carries a ``google.rpc.BadRequest`` with one violation per bad field (field paths
as in the proto: ``inputs.leaders_left``, ``inputs.systems[2].actuality``, ``subject.kind``) and a
message naming them; every status carries a ``google.rpc.ErrorInfo`` with a stable reason.
Unexpected exceptions are logged with the request id and reach the client only as a generic
INTERNAL status: their text may hold paths, SQL or data that are not the caller's business.
"""

from __future__ import annotations

import functools
import inspect

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from dsl.errors import BagalauError, EvaluationFailed, FieldIssue, InputError, NoVersionInForce, UnknownMethodology, UnknownVersion

from .calls import current_request_id
from .log import get_logger

DOMAIN = "bagalau.v1"
MAX_MESSAGE_CHARS = 3000  # the status message stays readable; the details list every problem

log = get_logger("bagalau.errors")

# Request fields that are not inputs: an issue on any other field is about an input.
REQUEST_FIELDS = ("methodology", "version", "as_of", "subject", "language", "only", "inputs", "items", "request",
                  "evaluation_id", "source", "filename", "subject_kind", "old", "new", "format", "setup", "subjects")


class ServiceError(Exception):
    """A problem found by the service itself, with the status code to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str, reason: str):
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason


class RequestInvalid(InputError):
    """Request-level problems the service finds before calling the library (same shape as InputError)."""


def field_path(field: str) -> str:
    """The proto path of a field the library names: input names live under ``inputs``."""
    head = field.split(".", 1)[0].split("[", 1)[0]
    return field if head in REQUEST_FIELDS else f"inputs.{field}"


def violations(issues: list[FieldIssue]) -> list[error_details_pb2.BadRequest.FieldViolation]:
    out = []
    for issue in issues:
        # a constraint names all the inputs it ties together: "a, b, c"
        for field in [f.strip() for f in issue.field.split(",") if f.strip()] or [""]:
            out.append(error_details_pb2.BadRequest.FieldViolation(field=field_path(field), description=issue.message))
    return out


def _pack(message) -> any_pb2.Any:
    a = any_pb2.Any()
    a.Pack(message)
    return a


def _error_info(reason: str, **metadata: str) -> any_pb2.Any:
    return _pack(error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=metadata))


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS - 1] + "…"


def status_for(exc: BaseException, request_id: str = "") -> status_pb2.Status:
    """The google.rpc.Status for an exception raised while serving a request."""
    if isinstance(exc, InputError):
        vs = violations(exc.issues)
        names = ", ".join(dict.fromkeys(v.field for v in vs))
        detail = "; ".join(f"{v.field}: {v.description}" for v in vs)
        message = _truncate(f"invalid request ({len(vs)} problem{'s' if len(vs) != 1 else ''}: {names}): {detail}")
        return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message,
                                 details=[_pack(error_details_pb2.BadRequest(field_violations=vs)),
                                          _error_info("INVALID_ARGUMENT")])
    if isinstance(exc, (UnknownMethodology, UnknownVersion)):
        reason = "UNKNOWN_METHODOLOGY" if isinstance(exc, UnknownMethodology) else "UNKNOWN_VERSION"
        return status_pb2.Status(code=code_pb2.NOT_FOUND, message=_truncate(str(exc)), details=[_error_info(reason)])
    if isinstance(exc, NoVersionInForce):
        pf = error_details_pb2.PreconditionFailure(violations=[error_details_pb2.PreconditionFailure.Violation(
            type="VERSION_IN_FORCE", subject="as_of", description=str(exc))])
        return status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message=_truncate(str(exc)),
                                 details=[_pack(pf), _error_info("NO_VERSION_IN_FORCE")])
    if isinstance(exc, EvaluationFailed):
        return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=_truncate(str(exc)),
                                 details=[_error_info("EVALUATION_FAILED")])
    if isinstance(exc, ServiceError):
        return status_pb2.Status(code=exc.code.value[0], message=_truncate(exc.message), details=[_error_info(exc.reason)])
    if isinstance(exc, BagalauError):  # any other library error: its message is safe for clients
        return status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=_truncate(str(exc)),
                                 details=[_error_info(type(exc).__name__)])
    log.error("internal error", request_id=request_id, exc_info=exc)
    return status_pb2.Status(code=code_pb2.INTERNAL,
                             message=f"internal error; the service logged it under request id {request_id}" if request_id
                             else "internal error; the service logged it",
                             details=[_error_info("INTERNAL", request_id=request_id)])


def abort(context: grpc.ServicerContext, status: status_pb2.Status) -> None:
    context.abort_with_status(rpc_status.to_status(status))


def handle_errors(method):
    """Servicer method decorator: library and service errors become rich statuses (unary and streaming)."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def stream_wrapper(self, request, context):
            try:
                yield from method(self, request, context)
            except Exception as exc:  # noqa: BLE001 - every error becomes a status
                if not context.is_active():  # cancelled or past its deadline: the client has its status already
                    log.info("call ended by the client or its deadline", request_id=current_request_id())
                abort(context, status_for(exc, current_request_id()))
        return stream_wrapper

    @functools.wraps(method)
    def unary_wrapper(self, request, context):
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every error becomes a status
            if not context.is_active():  # cancelled or past its deadline: the client has its status already
                log.info("call ended by the client or its deadline", request_id=current_request_id())
            abort(context, status_for(exc, current_request_id()))
    return unary_wrapper
