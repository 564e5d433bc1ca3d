"""The ScoringService: converts messages, calls the library, records evaluations. No scoring here."""

from __future__ import annotations

import grpc
from google.protobuf.message import DecodeError

from dsl.compiler import check_source
from dsl.diff import diff_versions, registry_sources
from dsl.errors import FieldIssue, InputError
from dsl.evaluate import LANGUAGES
from dsl.impact import ImpactAnalysis, known_values
from dsl.report import render_diff, render_impact

from . import convert, metrics
from .audit import AuditWriter, new_evaluation_ids, now_iso
from .calls import caller_of, current_request_id
from .errors import RequestInvalid, ServiceError, handle_errors, status_for
from .log import get_logger
from .protos import pb, pb_grpc
from .recording import record_to_pb
from .ruleset import RuleSet
from .views import EvaluateBatchRequestView, EvaluateRequestView

log = get_logger("bagalau.servicer")
DEFAULT_FILENAME = "request.bgl"


def _merge(ours: list[FieldIssue], library: list[FieldIssue]) -> list[FieldIssue]:
    """Every problem once: the message-level one wins where both name the same field."""
    named = {i.field for i in ours}
    return ours + [i for i in library if i.field not in named]


_counters: dict = {}
DEFAULT_MOVERS = 10  # largest movers listed by AnalyzeImpact when the setup does not say
CHECK_EVERY = 64  # batch items scored between checks that the call is still wanted (cancelled, past its deadline)


def _count(counts: dict, cv, outcome: str) -> None:
    """Count an evaluation in ``counts``; ``_publish`` adds them to the metric once per call."""
    key = (cv, outcome)
    counts[key] = counts.get(key, 0) + 1


def _publish(counts: dict) -> None:
    for (cv, outcome), n in counts.items():
        labels = (cv.methodology, cv.version, outcome)
        counter = _counters.get(labels)
        if counter is None:
            counter = _counters[labels] = metrics.EVALUATIONS.labels(*labels)
        counter.inc(n)


# The requests of these methods reach the servicer as the bytes received, and their responses
# leave it encoded (see add_servicer in server.py): requests are read as views (service/views.py:
# faster), and the audit log gets both as they crossed the wire, without encoding them again.
RAW_REQUEST_METHODS = ("Evaluate", "EvaluateBatch", "EvaluateStream")


def _received(request, view_type, name: str):
    """The bytes and the view of a request, received as bytes (or, from a caller in this process, as a message)."""
    raw = request if isinstance(request, bytes) else request.SerializeToString()
    try:
        return raw, view_type.FromString(raw)
    except DecodeError:
        raise ServiceError(grpc.StatusCode.INVALID_ARGUMENT, f"the request is not a valid bagalau.v1.{name} message",
                           "MALFORMED_REQUEST") from None


class ScoringServicer(pb_grpc.ScoringServiceServicer):
    def __init__(self, rules: RuleSet, audit: AuditWriter | None, max_batch_size: int = 1000):
        self.rules = rules
        self.audit = audit
        self.max_batch_size = max_batch_size

    # ---------------------------------------------------------------- evaluation
    @staticmethod
    def _version(registry, selection: convert.Selection, kind: str, versions: dict):
        """The version a request selects. ``versions`` caches the look-ups of a call."""
        key = selection if selection.as_of is None else (selection, kind)  # the version in force depends on the kind
        cv = versions.get(key)
        if cv is None:
            if selection.version:
                cv = registry.get(selection.methodology, selection.version)
            else:
                cv = registry.in_force(selection.methodology, selection.as_of, kind)
            versions[key] = cv
        return cv

    def _evaluate(self, registry, req, evaluation_id: str, versions: dict, counts: dict,
                  out: pb.EvaluateResponse | None = None) -> pb.EvaluateResponse:
        """One item (a request or its view), filled into ``out`` when given. ``versions`` caches
        version look-ups for the call; ``counts`` gathers the evaluations metric for it (see
        ``_publish``). (Every item of a batch comes here: it is written for speed.)"""
        selection, ev, issues = convert.evaluation_from_pb(req)
        if selection is None:
            raise RequestInvalid(issues)
        cv = self._version(registry, selection, ev.subject_kind, versions)
        try:
            result = cv.evaluate(ev)
        except InputError as e:
            _count(counts, cv, "invalid")
            raise RequestInvalid(_merge(issues, e.issues)) from None
        except Exception:
            _count(counts, cv, "failed")
            raise
        if issues:
            _count(counts, cv, "invalid")
            raise RequestInvalid(issues)
        _count(counts, cv, "ok")
        return convert.result_to_pb(result, req.request_id, evaluation_id, registry.root, out)

    def _record(self, context, evaluation_ids: list[str], kind: str, request: bytes, response: bytes) -> None:
        """Queue the call's successful evaluations for the audit log, as one entry: the request as
        received and the response as returned, from which the audit writer's process builds the records."""
        if self.audit is None or not evaluation_ids:
            return
        self.audit.submit_call(evaluation_ids, now_iso(), caller_of(context), context.peer(), kind, request, response)

    def _ids(self, count: int) -> list[str]:
        return new_evaluation_ids(count) if self.audit is not None else [""] * count

    def _batch(self, request, context, where: str = "") -> bytes:
        """A batch's response, encoded (see ``add_servicer`` in server.py)."""
        raw, batch = _received(request, EvaluateBatchRequestView, "EvaluateBatchRequest")
        items = batch.items
        if len(items) > self.max_batch_size:
            raise RequestInvalid([FieldIssue("items", f"{len(items)} items{where}; at most {self.max_batch_size} are "
                                             "accepted in one batch (BAGALAU_MAX_BATCH_SIZE): split it")])
        registry = self.rules.current  # one rule set for the whole batch
        out = pb.EvaluateBatchResponse()
        add = out.items.add
        request_id = current_request_id()
        done, versions, counts = [], {}, {}
        evaluate = self._evaluate
        ids = self._ids(len(items))
        try:
            for start in range(0, len(items), CHECK_EVERY):
                self._check_wanted(context)
                for item, evaluation_id in zip(items[start:start + CHECK_EVERY], ids[start:start + CHECK_EVERY]):
                    slot = add()  # filled in place: appending a finished message would copy it
                    try:
                        evaluate(registry, item, evaluation_id, versions, counts, slot)
                        done.append(evaluation_id)
                    except Exception as exc:  # noqa: BLE001 - a bad item gets its own status; the others are scored
                        slot.Clear()
                        slot.request_id = item.request_id
                        slot.subject.CopyFrom(item.subject)
                        slot.error.CopyFrom(status_for(exc, request_id))
        finally:
            _publish(counts)
        response = out.SerializeToString()
        self._record(context, done, "batch", raw, response)
        return response

    @staticmethod
    def _check_wanted(context) -> None:
        """Stop scoring a batch nobody waits for any more."""
        if not context.is_active():
            raise ServiceError(grpc.StatusCode.CANCELLED, "the call ended before the batch was scored", "CANCELLED")
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            raise ServiceError(grpc.StatusCode.DEADLINE_EXCEEDED, "the deadline passed before the batch was scored",
                               "DEADLINE_EXCEEDED")

    @handle_errors
    def Evaluate(self, request, context):
        raw, req = _received(request, EvaluateRequestView, "EvaluateRequest")
        registry = self.rules.current
        counts: dict = {}
        try:
            response = self._evaluate(registry, req, self._ids(1)[0], {}, counts)
        finally:
            _publish(counts)
        data = response.SerializeToString()
        self._record(context, [response.evaluation_id], "one", raw, data)
        return data

    @handle_errors
    def EvaluateBatch(self, request, context):
        return self._batch(request, context)

    @handle_errors
    def EvaluateStream(self, request_iterator, context):
        for n, batch in enumerate(request_iterator, 1):
            yield self._batch(batch, context, where=f" in stream message {n}")

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

    # ---------------------------------------------------------------- versions compared
    @staticmethod
    def _version_refs(old: pb.VersionRef, new: pb.VersionRef, path: str, issues: list[FieldIssue]) -> None:
        if not old.methodology:
            issues.append(FieldIssue(f"{path}old.methodology", "required, e.g. org-development"))
        for name, ref in (("old", old), ("new", new)):
            if not ref.version:
                issues.append(FieldIssue(f"{path}{name}.version", "required, e.g. 2020 or 2021-proposed"))

    @staticmethod
    def _version_pair(registry, old: pb.VersionRef, new: pb.VersionRef) -> tuple:
        """The two CompiledVersions a request names (the second's methodology defaults to the first's)."""
        return registry.get(old.methodology, old.version), registry.get(new.methodology or old.methodology, new.version)

    @staticmethod
    def _language(language: str, path: str, issues: list[FieldIssue]) -> str:
        if language and language not in LANGUAGES:
            issues.append(FieldIssue(path, f"{language!r} is not supported; expected kk, ru or en"))
        return language or convert.DEFAULT_LANGUAGE

    @staticmethod
    def _format(value: int, formats: dict, path: str, issues: list[FieldIssue]) -> str | None:
        if value and value not in formats:
            issues.append(FieldIssue(path, f"unknown format {value}; expected one of {', '.join(formats.values())}"))
        return formats.get(value)

    @handle_errors
    def DiffVersions(self, request, context):
        registry = self.rules.current
        issues: list[FieldIssue] = []
        self._version_refs(request.old, request.new, "", issues)
        language = self._language(request.language, "language", issues)
        fmt = self._format(request.format, convert.DIFF_FORMATS, "format", issues)
        if issues:
            raise RequestInvalid(issues)
        old, new = self._version_pair(registry, request.old, request.new)
        result = diff_versions(old, new, registry_sources(registry, old, new))
        response = convert.diff_to_pb(result, old, new, registry.root)
        if fmt:
            response.document.CopyFrom(convert.document_to_pb(fmt, render_diff(convert.relative_diff(result, registry.root),
                                                                               fmt, language)))
        return response

    @handle_errors
    def AnalyzeImpact(self, request_iterator, context):
        registry = self.rules.current  # one rule set for the whole call
        analysis = old = new = None
        fmt, language, count = None, "", 0
        for n, message in enumerate(request_iterator, 1):
            self._check_wanted(context)
            where = f" in stream message {n}"
            if n == 1:
                analysis, old, new, fmt, language = self._impact_setup(registry, message)
            elif message.HasField("setup"):
                raise RequestInvalid([FieldIssue("setup", f"only in the first message; sent again{where}")])
            if len(message.subjects) > self.max_batch_size:
                raise RequestInvalid([FieldIssue("subjects", f"{len(message.subjects)} subjects{where}; at most "
                                                 f"{self.max_batch_size} are accepted in one message "
                                                 "(BAGALAU_MAX_BATCH_SIZE): send them in more messages")])
            issues: list[FieldIssue] = []
            subjects = [convert.impact_subject_from_pb(s, f"subjects[{i}].", issues) for i, s in enumerate(message.subjects)]
            if issues:
                raise RequestInvalid([FieldIssue(i.field, f"{i.message}{where}") for i in issues])
            for raw in subjects:
                count += 1
                analysis.add(raw, count)
        if analysis is None:
            raise RequestInvalid([FieldIssue("setup", "no message was sent; the first names the versions to compare")])
        report = analysis.report()
        response = convert.impact_to_pb(report, old, new, registry.root)
        if fmt:
            response.document.CopyFrom(convert.document_to_pb(fmt, render_impact(report, fmt, language)))
        return response

    def _impact_setup(self, registry, message: pb.AnalyzeImpactRequest):
        if not message.HasField("setup"):
            raise RequestInvalid([FieldIssue("setup", "required in the first message: the versions to compare (old, new)")])
        setup = message.setup
        issues: list[FieldIssue] = []
        self._version_refs(setup.old, setup.new, "setup.", issues)
        language = self._language(setup.language, "setup.language", issues)
        fmt = self._format(setup.format, convert.IMPACT_FORMATS, "setup.format", issues)
        movers = setup.movers if setup.HasField("movers") else DEFAULT_MOVERS
        if movers < 0:
            issues.append(FieldIssue("setup.movers", f"{movers}: give 0 or more"))
        if any(i.field.startswith(("setup.old", "setup.new")) for i in issues):
            raise RequestInvalid(issues)
        old, new = self._version_pair(registry, setup.old, setup.new)
        known = known_values(old, new)
        unknown = [v for v in setup.values if v not in known]
        if unknown:
            issues.append(FieldIssue("setup.values", f"not a value of {old.model.key} or {new.model.key}: {', '.join(unknown)}"))
        if setup.rank_by and setup.rank_by not in known:
            issues.append(FieldIssue("setup.rank_by", f"{setup.rank_by!r} is not a value of {old.model.key} or {new.model.key}"))
        if issues:
            raise RequestInvalid(issues)
        analysis = ImpactAnalysis(old, new, list(setup.values) or None, setup.rank_by or None, movers, language)
        return analysis, old, new, fmt, language

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
