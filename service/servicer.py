"""The ScoringService: converts messages, calls the library, records evaluations. No scoring here."""

from __future__ import annotations

import grpc

from dsl.compiler import check_source
from dsl.errors import FieldIssue, InputError

from . import convert, metrics
from .audit import AuditWriter, new_evaluation_ids, now_iso
from .calls import caller_of, current_request_id
from .errors import RequestInvalid, ServiceError, handle_errors, status_for
from .log import get_logger
from .protos import pb, pb_grpc
from .recording import PendingEvaluation, record_to_pb
from .ruleset import RuleSet

log = get_logger("bagalau.servicer")
DEFAULT_FILENAME = "request.bgl"


def _merge(ours: list[FieldIssue], library: list[FieldIssue]) -> list[FieldIssue]:
    """Every problem once: the message-level one wins where both name the same field."""
    named = {i.field for i in ours}
    return ours + [i for i in library if i.field not in named]


_counters: dict = {}


def _count(cv, outcome: str) -> None:
    key = (cv.methodology, cv.version, outcome)
    counter = _counters.get(key)
    if counter is None:
        counter = _counters[key] = metrics.EVALUATIONS.labels(*key)
    counter.inc()


class ScoringServicer(pb_grpc.ScoringServiceServicer):
    def __init__(self, rules: RuleSet, audit: AuditWriter | None, max_batch_size: int = 1000):
        self.rules = rules
        self.audit = audit
        self.max_batch_size = max_batch_size

    # ---------------------------------------------------------------- evaluation
    def _evaluate(self, registry, req: pb.EvaluateRequest, evaluation_id: str, versions: dict,
                  out: pb.EvaluateResponse | None = None) -> pb.EvaluateResponse:
        """One item, filled into ``out`` when given. ``versions`` caches version look-ups for the call."""
        selection, ev, issues = convert.evaluation_from_pb(req)
        if selection is None:
            raise RequestInvalid(issues)
        key = (selection.methodology, selection.version, selection.as_of, ev.subject_kind if selection.as_of else None)
        cv = versions.get(key)
        if cv is None:
            if selection.version:
                cv = registry.get(selection.methodology, selection.version)
            else:
                cv = registry.in_force(selection.methodology, selection.as_of, ev.subject_kind)
            versions[key] = cv
        try:
            result = cv.evaluate(ev)
        except InputError as e:
            _count(cv, "invalid")
            raise RequestInvalid(_merge(issues, e.issues)) from None
        except Exception:
            _count(cv, "failed")
            raise
        if issues:
            _count(cv, "invalid")
            raise RequestInvalid(issues)
        _count(cv, "ok")
        return convert.result_to_pb(result, req.request_id, evaluation_id, registry.root, out)

    def _record(self, context, pairs: list[tuple[pb.EvaluateRequest, pb.EvaluateResponse]]) -> None:
        """Queue the call's successful evaluations for the audit log (one queue entry per call)."""
        if self.audit is None or not pairs:
            return
        at, caller, peer = now_iso(), caller_of(context), context.peer()
        self.audit.submit([PendingEvaluation(resp.evaluation_id, at, caller, peer, req, resp) for req, resp in pairs])

    def _ids(self, count: int) -> list[str]:
        return new_evaluation_ids(count) if self.audit is not None else [""] * count

    def _batch(self, items, context, where: str = "") -> pb.EvaluateBatchResponse:
        if len(items) > self.max_batch_size:
            raise RequestInvalid([FieldIssue("items", f"{len(items)} items{where}; at most {self.max_batch_size} are "
                                             "accepted in one batch (BAGALAU_MAX_BATCH_SIZE): split it")])
        registry = self.rules.current  # one rule set for the whole batch
        out = pb.EvaluateBatchResponse()
        request_id = current_request_id()
        done, versions = [], {}
        for item, evaluation_id in zip(items, self._ids(len(items))):
            if not context.is_active():  # cancelled: stop scoring for nobody
                raise ServiceError(grpc.StatusCode.CANCELLED, "the call ended before the batch was scored", "CANCELLED")
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                raise ServiceError(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the batch was scored",
                                   "DEADLINE_EXCEEDED")
            slot = out.items.add()  # filled in place: appending a finished message would copy it
            try:
                done.append((item, self._evaluate(registry, item, evaluation_id, versions, slot)))
            except Exception as exc:  # noqa: BLE001 - a bad item gets its own status; the others are scored
                slot.Clear()
                slot.request_id = item.request_id
                slot.subject.CopyFrom(item.subject)
                slot.error.CopyFrom(status_for(exc, request_id))
        self._record(context, done)
        return out

    @handle_errors
    def Evaluate(self, request, context):
        registry = self.rules.current
        response = self._evaluate(registry, request, self._ids(1)[0], {})
        self._record(context, [(request, response)])
        return response

    @handle_errors
    def EvaluateBatch(self, request, context):
        return self._batch(request.items, context)

    @handle_errors
    def EvaluateStream(self, request_iterator, context):
        for n, batch in enumerate(request_iterator, 1):
            yield self._batch(batch.items, context, where=f" in stream message {n}")

    # ---------------------------------------------------------------- methodologies
    @handle_errors
    def ListMethodologies(self, request, context):
        registry = self.rules.current
        root = registry.root
        return pb.ListMethodologiesResponse(
            methodologies=[convert.methodology_to_pb(m, registry.versions(m), rules_root=root) for m in registry.methodologies()],
            content_hash=registry.content_hash)

    @handle_errors
    def GetMethodology(self, request, context):
        registry = self.rules.current
        issues: list[FieldIssue] = []
        if not request.methodology:
            issues.append(FieldIssue("methodology", "required, e.g. org-development"))
        if request.version and request.HasField("as_of"):
            issues.append(FieldIssue("version", "give either version or as_of, not both"))
        as_of = convert.date_from_pb(request.as_of, "as_of", issues) if request.HasField("as_of") else None
        if issues:
            raise RequestInvalid(issues)
        versions = registry.versions(request.methodology)
        if request.version:
            versions = [registry.get(request.methodology, request.version)]
        elif as_of is not None:
            versions = [registry.in_force(request.methodology, as_of, request.subject_kind or None)]
        kind = request.subject_kind
        if kind and not any(kind in cv.subjects for cv in versions):
            raise RequestInvalid([FieldIssue("subject_kind", f"{kind!r} is not scored by the selected version(s) of "
                                             f"{request.methodology}; they score "
                                             f"{', '.join(sorted({k for cv in versions for k in cv.subjects}))}")])

        def schema_for(cv):
            return [kind] if kind and kind in cv.subjects else ([] if kind else list(cv.subjects))

        return pb.GetMethodologyResponse(
            methodology=convert.methodology_to_pb(request.methodology, versions, schema_for, rules_root=registry.root),
            content_hash=registry.content_hash)

    # ---------------------------------------------------------------- rules
    @handle_errors
    def CheckRules(self, request, context):
        diagnostics = check_source(request.source, request.filename or DEFAULT_FILENAME, registry=self.rules.current)
        errors = sum(1 for d in diagnostics if d.severity == "error")
        warnings = sum(1 for d in diagnostics if d.severity == "warning")
        return pb.CheckRulesResponse(diagnostics=[convert.diagnostic_to_pb(d) for d in diagnostics],
                                     error_count=errors, warning_count=warnings, ok=errors == 0)

    # ---------------------------------------------------------------- audit
    @handle_errors
    def GetEvaluation(self, request, context):
        if not request.evaluation_id:
            raise RequestInvalid([FieldIssue("evaluation_id", "required: the evaluation_id of an EvaluateResponse")])
        if self.audit is None:
            raise ServiceError(grpc.StatusCode.FAILED_PRECONDITION, "the audit log is off on this server (BAGALAU_AUDIT=none)",
                               "AUDIT_OFF")
        item = self.audit.pending(request.evaluation_id)
        if item is None:
            try:
                item = self.audit.store.get(request.evaluation_id)
            except Exception:  # noqa: BLE001 - a database outage is not the caller's fault nor business
                log.exception("reading the audit log failed", evaluation_id=request.evaluation_id)
                raise ServiceError(grpc.StatusCode.UNAVAILABLE, "the audit log cannot be read right now; try again later",
                                   "AUDIT_UNAVAILABLE") from None
        if item is None:
            raise ServiceError(grpc.StatusCode.NOT_FOUND, f"no evaluation {request.evaluation_id!r} in the audit log",
                               "EVALUATION_NOT_FOUND")
        return pb.GetEvaluationResponse(evaluation=record_to_pb(item))
