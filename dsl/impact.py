"""Impact analysis: score the same subjects under two versions and show what the change does.

``analyze_impact(old, new, requests)`` evaluates every request (one subject and its inputs, as in
``bagalau eval``) under both ``CompiledVersion``s and returns an ``ImpactReport``: per subject the
old and new values of the main scores (every definition with a grade scale, plus any named), the
difference and the grade under each version, then the grade transition matrix, rank changes and
the largest movers. Subjects that cannot be scored under a version are kept, with the error.

All numbers are exact ``Decimal``s; nothing passes through binary floating point.

For streaming callers (the gRPC ``AnalyzeImpact``, which receives subjects in batches) use
``ImpactAnalysis``: ``add()`` each subject as it arrives (it returns that subject's ``SubjectImpact``
with both scores), then ``report()`` once for the ranks, transitions and movers.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable, Iterable

from .decimals import CONTEXT, format_decimal
from .errors import BagalauError, FieldIssue, InputError
from .evaluate import EvalRequest
from .model import VersionModel

FAILED = "(failed)"  # the grade column of a subject that could not be scored


# ---------------------------------------------------------------- results


@dataclass
class Outcome:
    """One subject under one version: the main values and grades, or the error."""

    values: dict[str, Decimal | None] = field(default_factory=dict)  # None: not defined in this version
    grades: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    error_type: str | None = None
    issues: list[dict] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict:
        out: dict[str, Any] = {
            "values": {k: (None if v is None else format_decimal(v)) for k, v in self.values.items()},
            "grades": dict(self.grades),
            "error": self.error,
        }
        if self.error_type:
            out["error_type"] = self.error_type
        if self.issues:
            out["issues"] = list(self.issues)
        return out


@dataclass
class SubjectImpact:
    line: int
    id: str
    kind: str
    name: str
    synthetic: bool
    old: Outcome
    new: Outcome
    rank_old: int | None = None
    rank_new: int | None = None

    def delta(self, name: str) -> Decimal | None:
        a, b = self.old.values.get(name), self.new.values.get(name)
        if a is None or b is None:
            return None
        return CONTEXT.subtract(b, a)

    @property
    def rank_change(self) -> int | None:
        """Places moved up (positive) or down (negative)."""
        if self.rank_old is None or self.rank_new is None:
            return None
        return self.rank_old - self.rank_new

    @property
    def failed(self) -> bool:
        return not (self.old.ok and self.new.ok)

    def to_json(self, values: list[str]) -> dict:
        return {
            "line": self.line,
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "synthetic": self.synthetic,
            "old": self.old.to_json(),
            "new": self.new.to_json(),
            "delta": {n: (None if self.delta(n) is None else format_decimal(self.delta(n))) for n in values},
            "rank": {"old": self.rank_old, "new": self.rank_new, "change": self.rank_change},
        }


@dataclass
class GradeScale:
    """The bands of one graded value, best first, with their labels (union of both versions)."""

    name: str
    bands: list[str]
    labels: dict[str, dict[str, str]]  # band -> language -> text
    lower: dict[str, Decimal | None] = field(default_factory=dict)  # band -> lower end (None: minus infinity)

    def label(self, band: str, language: str) -> str:
        from .evaluate import label_of

        return label_of(self.labels.get(band, {}), language, band)


@dataclass
class TransitionMatrix:
    score: str
    old_grades: list[str]  # rows
    new_grades: list[str]  # columns
    counts: list[list[int]]

    def count(self, old: str, new: str) -> int:
        try:
            return self.counts[self.old_grades.index(old)][self.new_grades.index(new)]
        except ValueError:
            return 0

    @property
    def total(self) -> int:
        return sum(sum(r) for r in self.counts)

    def changed(self) -> int:
        return sum(c for i, row in enumerate(self.counts) for j, c in enumerate(row)
                   if self.old_grades[i] != self.new_grades[j])

    def rows(self) -> list[dict]:
        """The non-empty cells as a table: score, old grade, new grade, count."""
        return [{"score": self.score, "old": g, "new": h, "count": c, "changed": g != h}
                for i, g in enumerate(self.old_grades) for j, h in enumerate(self.new_grades)
                if (c := self.counts[i][j])]

    def to_json(self) -> dict:
        return {"score": self.score, "old_grades": list(self.old_grades), "new_grades": list(self.new_grades),
                "counts": [list(r) for r in self.counts]}


@dataclass
class ValueSummary:
    name: str
    compared: int = 0  # subjects with the value under both versions
    up: int = 0
    down: int = 0
    same: int = 0
    min_delta: Decimal | None = None
    max_delta: Decimal | None = None
    total_delta: Decimal = Decimal(0)
    grade_changed: int = 0
    grade_up: int = 0
    grade_down: int = 0

    @property
    def mean_delta(self) -> Decimal | None:
        """Rounded to 4 decimal places (half-even); the total is exact."""
        if not self.compared:
            return None
        return CONTEXT.divide(self.total_delta, Decimal(self.compared)).quantize(Decimal("0.0001"), rounding=decimal.ROUND_HALF_EVEN)

    def to_json(self) -> dict:
        f = lambda d: None if d is None else format_decimal(d)  # noqa: E731
        return {"name": self.name, "compared": self.compared, "up": self.up, "down": self.down, "same": self.same,
                "min_delta": f(self.min_delta), "max_delta": f(self.max_delta), "total_delta": f(self.total_delta),
                "mean_delta": f(self.mean_delta), "grade_changed": self.grade_changed, "grade_up": self.grade_up,
                "grade_down": self.grade_down}


@dataclass
class ImpactReport:
    old: dict  # key, methodology, version, title, status
    new: dict
    values: list[str]  # the main values compared, in order
    graded: list[str]  # those with a grade scale
    rank_by: str | None
    subjects: list[SubjectImpact]
    scales: dict[str, GradeScale]
    transitions: dict[str, TransitionMatrix]
    summaries: dict[str, ValueSummary]
    movers: list[SubjectImpact]
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)  # value -> language -> label
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[tuple[SubjectImpact, str, str]]:
        """(subject, version key, error) for every failed evaluation."""
        out = []
        for s in self.subjects:
            if not s.old.ok:
                out.append((s, self.old["key"], s.old.error))
            if not s.new.ok:
                out.append((s, self.new["key"], s.new.error))
        return out

    def counts(self) -> dict[str, int]:
        return {
            "subjects": len(self.subjects),
            "scored_both": sum(1 for s in self.subjects if not s.failed),
            "failed_old": sum(1 for s in self.subjects if not s.old.ok),
            "failed_new": sum(1 for s in self.subjects if not s.new.ok),
            "failed_any": sum(1 for s in self.subjects if s.failed),
            **{f"grade_changed_{n}": self.transitions[n].changed() for n in self.graded if n in self.transitions},
        }

    def to_json(self) -> dict:
        return {
            "old": dict(self.old),
            "new": dict(self.new),
            "values": list(self.values),
            "graded": list(self.graded),
            "rank_by": self.rank_by,
            "counts": self.counts(),
            "summaries": {n: s.to_json() for n, s in self.summaries.items()},
            "subjects": [s.to_json(self.values) for s in self.subjects],
            "transitions": [row for n in self.graded if n in self.transitions for row in self.transitions[n].rows()],
            "matrices": {n: m.to_json() for n, m in self.transitions.items()},
            "grade_scales": {n: {"bands": g.bands, "labels": g.labels} for n, g in self.scales.items()},
            "movers": [{"id": s.id, "name": s.name, "kind": s.kind, "value": self.rank_by,
                        "old": _fmt(s.old.values.get(self.rank_by)), "new": _fmt(s.new.values.get(self.rank_by)),
                        "delta": _fmt(s.delta(self.rank_by)), "old_grade": s.old.grades.get(self.rank_by),
                        "new_grade": s.new.grades.get(self.rank_by), "rank_old": s.rank_old, "rank_new": s.rank_new,
                        "rank_change": s.rank_change} for s in self.movers],
            "failures": [{"line": s.line, "id": s.id, "kind": s.kind, "version": key, "error": err}
                         for s, key, err in self.failures],
            "value_labels": self.value_labels,
            "notes": list(self.notes),
        }


def _fmt(d: Decimal | None) -> str | None:
    return None if d is None else format_decimal(d)


# ---------------------------------------------------------------- the analysis


def _model(v) -> VersionModel:
    return v if isinstance(v, VersionModel) else v.model


def _info(v) -> dict:
    m = _model(v)
    return {"key": m.key, "methodology": m.methodology, "version": m.version, "title": dict(m.title),
            "status": m.status, "effective_from": m.effective_from.isoformat() if m.effective_from else None,
            "content_hash": m.content_hash}


def main_values(old, new) -> list[str]:
    """Definitions with a grade scale in either version, in evaluation order (new version's first)."""
    out: list[str] = []
    for m in (_model(new), _model(old)):
        for kind in m.subjects:
            scope = m.scopes[kind]
            out.extend(n for n in scope.order if n in scope.grades and n not in out)
    return out


def known_values(old, new) -> set[str]:
    return {n for m in (_model(old), _model(new)) for s in m.scopes.values() for n in s.definitions}


def _scale(name: str, old, new) -> GradeScale:
    bands: list[tuple[str, Any]] = []
    labels: dict[str, dict[str, str]] = {}
    seen = set()
    for m in (_model(new), _model(old)):
        for kind in m.subjects:
            g = m.scopes[kind].grades.get(name)
            if g is None:
                continue
            for b in g.bands:
                if b.name not in seen:
                    seen.add(b.name)
                    bands.append((b.name, b.interval))
                    labels[b.name] = dict(b.labels)
                else:
                    for lang, text in b.labels.items():
                        labels[b.name].setdefault(lang, text)
    # best first: by the lower end of the band, highest first (a band from -inf is the worst)
    order = sorted(range(len(bands)), key=lambda i: (bands[i][1].lo is None, -(bands[i][1].lo or 0), i))
    return GradeScale(name, [bands[i][0] for i in order], labels, {b: interval.lo for b, interval in bands})


class ImpactAnalysis:
    """Incremental impact analysis: ``add`` subjects (in any number of batches), then ``report``."""

    def __init__(self, old, new, values: list[str] | None = None, rank_by: str | None = None,
                 movers: int = 10, language: str = "kk"):
        self.old, self.new = old, new
        self.language = language
        known = known_values(old, new)
        unknown = [n for n in (values or []) if n not in known]
        if unknown:
            raise ValueError(f"not a value of {_model(old).key} or {_model(new).key}: {', '.join(unknown)}")
        self.graded = main_values(old, new)
        self.values = list(dict.fromkeys(self.graded + list(values or [])))
        if rank_by is not None and rank_by not in known:
            raise ValueError(f"cannot rank by {rank_by}: not a value of {_model(old).key} or {_model(new).key}")
        self.rank_by = rank_by or self._default_rank_by()
        if self.rank_by:  # the value ranked by comes first
            self.values = [self.rank_by] + [n for n in self.values if n != self.rank_by]
            self.graded = [n for n in self.values if n in self.graded]
        self.max_movers = movers
        self.subjects: list[SubjectImpact] = []
        self.notes: list[str] = []
        self._dropped: dict[str, set[str]] = {"old": set(), "new": set()}

    def _default_rank_by(self) -> str | None:
        for m in (_model(self.new), _model(self.old)):
            for kind in m.subjects:
                scope = m.scopes[kind]
                for n in scope.order:
                    if n in self.graded and scope.definitions[n].kind == "score":
                        return n
        return self.values[0] if self.values else None

    # ------------------------------------------------------------ one subject
    def add(self, raw: Any, line: int = 0) -> SubjectImpact:
        """Score one request (``{"subject": {...}, "inputs": {...}}``, or an Exception from reading it)."""
        sid, kind, name, synthetic = "", "", "", False
        if isinstance(raw, dict) and isinstance(raw.get("subject"), dict):
            subj = raw["subject"]
            sid = str(subj.get("id", "")) if subj.get("id") is not None else ""
            kind = str(subj.get("kind", "")) if isinstance(subj.get("kind"), str) else ""
            name = str(subj.get("name", "")) if isinstance(subj.get("name"), str) else ""
            synthetic = subj.get("synthetic") is True
        try:
            if isinstance(raw, Exception):
                raise InputError([FieldIssue("request", str(raw))])
            overrides = _overrides(raw)
            req = _request({k: v for k, v in raw.items() if k != "inputs_by_version"})
        except BagalauError as e:
            bad = _failure(e)
            s = SubjectImpact(line, sid or f"line {line}", kind, name, synthetic, bad, _failure(e))
            self.subjects.append(s)
            return s
        s = SubjectImpact(line, req.subject_id or f"line {line}", req.subject_kind, name, synthetic,
                          self._score(self.old, self.new, _with(req, self.old, overrides), "old"),
                          self._score(self.new, self.old, _with(req, self.new, overrides), "new"))
        self.subjects.append(s)
        return s

    def _score(self, version, other, req: EvalRequest, side: str) -> Outcome:
        m = _model(version)
        scope = m.scopes.get(req.subject_kind)
        if scope is None:
            return Outcome(error=f"{req.subject_kind!r} is not a subject kind of {m.key} ({', '.join(m.subjects)})",
                           error_type="InputError")
        other_scope = _model(other).scopes.get(req.subject_kind)
        inputs = {}
        for k, v in req.inputs.items():
            if k not in scope.inputs and k not in scope.definitions and other_scope is not None and \
                    (k in other_scope.inputs or k in other_scope.definitions):
                self._dropped[side].add(k)  # only the other version uses it
                continue
            inputs[k] = v
        only = [n for n in self.values if n in scope.definitions]
        try:
            result = version.evaluate(EvalRequest(req.subject_id, req.subject_kind, inputs, only or None, False, self.language))
        except BagalauError as e:
            return _failure(e)
        values = {n: result.values.get(n) for n in self.values}
        return Outcome(values, {n: g for n, g in result.grades.items() if n in self.values})

    def add_all(self, requests: Iterable[tuple[int, Any]], progress: Callable[[int, int], None] | None = None,
                total: int | None = None) -> None:
        for i, (line, raw) in enumerate(requests, 1):
            self.add(raw, line)
            if progress is not None:
                progress(i, total or 0)

    # ------------------------------------------------------------ the report
    def report(self) -> ImpactReport:
        subjects = self.subjects
        self._rank()
        scales = {n: _scale(n, self.old, self.new) for n in self.graded}
        transitions = {}
        for n, scale in scales.items():
            old_grades = list(scale.bands)
            new_grades = list(scale.bands)
            counts = [[0] * len(new_grades) for _ in old_grades]
            for s in subjects:
                g, h = s.old.grades.get(n), s.new.grades.get(n)
                if g is None or h is None:
                    continue
                for grades, x in ((old_grades, g), (new_grades, h)):
                    if x not in grades:  # a value outside every band of the scale is not graded
                        grades.append(x)
                        if grades is old_grades:
                            counts.append([0] * len(new_grades))
                        else:
                            for row in counts:
                                row.append(0)
                counts[old_grades.index(g)][new_grades.index(h)] += 1
            transitions[n] = TransitionMatrix(n, old_grades, new_grades, counts)
        summaries = {n: self._summary(n, scales.get(n)) for n in self.values}
        movers = []
        if self.rank_by:
            moved = [s for s in subjects if s.delta(self.rank_by) not in (None, Decimal(0))]
            moved.sort(key=lambda s: (-abs(s.delta(self.rank_by)), s.id))
            movers = moved[: self.max_movers]
        notes = list(self.notes)
        for side, key in (("old", _model(self.old).key), ("new", _model(self.new).key)):
            if self._dropped[side]:
                notes.append(f"inputs only the other version uses were not given to {key}: {', '.join(sorted(self._dropped[side]))}")
        if self.rank_by:
            notes.append(f"ranks are by {self.rank_by}, highest first, within each subject kind; equal values share a rank")
        labels = {}
        for n in self.values:
            for m in (_model(self.new), _model(self.old)):
                d = next((s.definitions[n] for s in m.scopes.values() if n in s.definitions), None)
                if d is not None:
                    labels[n] = dict(d.labels)
                    break
        return ImpactReport(_info(self.old), _info(self.new), list(self.values), list(self.graded), self.rank_by,
                            list(subjects), scales, transitions, summaries, movers, labels, notes)

    def _rank(self) -> None:
        n = self.rank_by
        for s in self.subjects:
            s.rank_old = s.rank_new = None
        if not n:
            return
        for side in ("old", "new"):
            by_kind: dict[str, list[SubjectImpact]] = {}
            for s in self.subjects:
                v = getattr(s, side).values.get(n)
                if getattr(s, side).ok and v is not None:
                    by_kind.setdefault(s.kind, []).append(s)
            for group in by_kind.values():
                group.sort(key=lambda s: getattr(s, side).values[n], reverse=True)
                rank = 0
                previous = None
                for i, s in enumerate(group, 1):
                    v = getattr(s, side).values[n]
                    if v != previous:
                        rank, previous = i, v
                    setattr(s, f"rank_{side}", rank)

    def _summary(self, n: str, scale: GradeScale | None) -> ValueSummary:
        out = ValueSummary(n)
        order = {g: i for i, g in enumerate(scale.bands)} if scale else {}
        for s in self.subjects:
            d = s.delta(n)
            if d is None:
                continue
            out.compared += 1
            out.total_delta = CONTEXT.add(out.total_delta, d)
            if d > 0:
                out.up += 1
            elif d < 0:
                out.down += 1
            else:
                out.same += 1
            out.min_delta = d if out.min_delta is None or d < out.min_delta else out.min_delta
            out.max_delta = d if out.max_delta is None or d > out.max_delta else out.max_delta
            g, h = s.old.grades.get(n), s.new.grades.get(n)
            if g is not None and h is not None and g != h:
                out.grade_changed += 1
                if g in order and h in order:
                    if order[h] < order[g]:
                        out.grade_up += 1
                    else:
                        out.grade_down += 1
        return out


def _overrides(raw: Any) -> dict[str, dict]:
    """``inputs_by_version``: {version or methodology@version: {input: value}} laid over ``inputs``.

    For inputs whose meaning or scale differs between the versions compared (points on a 0..15 scale
    under one version and 0..50 under the other): the same subject, assessed under each version.
    """
    if not isinstance(raw, dict) or "inputs_by_version" not in raw:
        return {}
    by = raw["inputs_by_version"]
    if not isinstance(by, dict) or not all(isinstance(v, dict) for v in by.values()):
        raise InputError([FieldIssue("inputs_by_version", "expected {\"VERSION\": {name: value, …}, …}")])
    return by


def _with(req: EvalRequest, version, overrides: dict[str, dict]) -> EvalRequest:
    m = _model(version)
    extra = overrides.get(m.key) or overrides.get(m.version)
    if not extra:
        return req
    return EvalRequest(req.subject_id, req.subject_kind, {**req.inputs, **extra})


def _request(raw: Any) -> EvalRequest:
    from .cli import to_request  # the same request checks as `bagalau eval`

    req = to_request(raw, None, False, "kk")
    return EvalRequest(req.subject_id, req.subject_kind, req.inputs)


def _failure(e: BagalauError) -> Outcome:
    issues = [{"field": i.field, "message": i.message} for i in e.issues] if isinstance(e, InputError) else []
    return Outcome(error=str(e), error_type=type(e).__name__, issues=issues)


def analyze_impact(old, new, requests: Iterable[Any], values: list[str] | None = None, rank_by: str | None = None,
                   movers: int = 10, language: str = "kk", progress: Callable[[int, int], None] | None = None) -> ImpactReport:
    """Score every request under both versions and compare.

    ``requests``: request objects (dicts as read by ``dsl.decimals.loads``), or ``(line, request)``
    pairs as ``dsl.cli.read_requests`` gives them (a request may be an Exception: an unreadable line,
    reported as a failed subject). ``values``: definitions to compare besides the graded ones.
    ``progress(done, total)`` is called after each subject. Raises ValueError for unknown names.
    """
    items = list(requests)
    pairs = [x if isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], int) else (i, x)
             for i, x in enumerate(items, 1)]
    analysis = ImpactAnalysis(old, new, values, rank_by, movers, language)
    analysis.add_all(pairs, progress, len(pairs))
    return analysis.report()
