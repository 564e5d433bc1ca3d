"""Conversions between the protobuf messages and the library's types. No scoring logic here.

Decimals cross as strings in both directions: a well-formed decimal string becomes a ``Decimal``;
a malformed one is passed on as it is, so that the library reports it together with every other
problem of the request, with the type it expected.
"""

from __future__ import annotations

import decimal
import functools
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from dsl.decimals import format_decimal
from dsl.errors import FieldIssue
from dsl.evaluate import EvalRequest, EvalResult, ExplanationItem

from .protos import pb

DEFAULT_LANGUAGE = "kk"

STATUSES = {"draft": pb.VERSION_STATUS_DRAFT, "proposed": pb.VERSION_STATUS_PROPOSED,
            "in_force": pb.VERSION_STATUS_IN_FORCE, "repealed": pb.VERSION_STATUS_REPEALED}
INPUT_TYPES = {"count": pb.INPUT_TYPE_COUNT, "decimal": pb.INPUT_TYPE_DECIMAL, "percent": pb.INPUT_TYPE_PERCENT,
               "share": pb.INPUT_TYPE_SHARE, "points": pb.INPUT_TYPE_POINTS, "number": pb.INPUT_TYPE_NUMBER,
               "bool": pb.INPUT_TYPE_BOOL, "text": pb.INPUT_TYPE_TEXT, "date": pb.INPUT_TYPE_DATE,
               "enum": pb.INPUT_TYPE_ENUM, "list": pb.INPUT_TYPE_LIST}
OUTPUT_KINDS = {"indicator": pb.OUTPUT_KIND_INDICATOR, "criterion": pb.OUTPUT_KIND_CRITERION,
                "direction": pb.OUTPUT_KIND_DIRECTION, "score": pb.OUTPUT_KIND_SCORE, "bonus": pb.OUTPUT_KIND_BONUS,
                "penalty": pb.OUTPUT_KIND_PENALTY, "coefficient": pb.OUTPUT_KIND_COEFFICIENT, "value": pb.OUTPUT_KIND_VALUE}
SEVERITIES = {"error": pb.SEVERITY_ERROR, "warning": pb.SEVERITY_WARNING}


# ------------------------------------------------------------------------------ values


def _decimal(text: str) -> Decimal | str:
    try:
        d = Decimal(text.strip())
    except decimal.InvalidOperation:
        return text
    return d if d.is_finite() else text


def value_to_python(value: pb.Value, path: str, issues: list[FieldIssue]) -> Any:
    """A Value as the library takes it: Decimal, bool, str, list, dict. Problems go to ``issues``."""
    kind = value.WhichOneof("kind")
    if kind == "decimal":
        return _decimal(value.decimal)
    if kind == "flag":
        return value.flag
    if kind == "text":
        return value.text
    if kind == "list":
        return [value_to_python(item, f"{path}[{i}]", issues) for i, item in enumerate(value.list.items)]
    if kind == "record":
        return {k: value_to_python(v, f"{path}.{k}", issues) for k, v in value.record.fields.items()}
    issues.append(FieldIssue(path, "no value set; set one of decimal, flag, text, list or record"))
    return None


def python_to_value(obj: Any) -> pb.Value:
    """A library value (a default, a recorded input) as a Value. Floats are refused: never scores."""
    if isinstance(obj, bool):
        return pb.Value(flag=obj)
    if isinstance(obj, (Decimal, int)):
        return pb.Value(decimal=format_decimal(Decimal(obj)))
    if isinstance(obj, (str, date)):
        return pb.Value(text=obj.isoformat() if isinstance(obj, date) else obj)
    if isinstance(obj, (list, tuple)):
        return pb.Value(list=pb.ValueList(items=[python_to_value(x) for x in obj]))
    if isinstance(obj, dict):
        return pb.Value(record=pb.Record(fields={str(k): python_to_value(v) for k, v in obj.items()}))
    raise TypeError(f"cannot send a {type(obj).__name__} as a Value")


def date_from_pb(d, path: str, issues: list[FieldIssue]) -> date | None:
    try:
        return date(d.year, d.month, d.day)
    except ValueError:
        issues.append(FieldIssue(path, f"{d.year:04d}-{d.month:02d}-{d.day:02d} is not a date; give year, month and day"))
        return None


def date_to_pb(d: date | None, target) -> None:
    if d is not None:
        target.year, target.month, target.day = d.year, d.month, d.day


def decimal_text(d) -> str:
    return "" if d is None else format_decimal(Decimal(d))


# ------------------------------------------------------------------------------ evaluation


@dataclass
class Selection:
    """Which version a request asks for: by name, or the one in force on a date."""

    methodology: str
    version: str
    as_of: date | None


def evaluation_from_pb(req: pb.EvaluateRequest) -> tuple[Selection | None, EvalRequest, list[FieldIssue]]:
    """The version selection and library request, and the problems found in the message itself.

    The selection is None when the request does not say which version to use. (This runs for
    every item of every batch: it is written for speed.)
    """
    issues: list[FieldIssue] = []
    has_as_of = req.HasField("as_of")
    as_of = date_from_pb(req.as_of, "as_of", issues) if has_as_of else None
    methodology, version, subject = req.methodology, req.version, req.subject
    selectable = bool(methodology and subject.kind and (version or as_of is not None) and not (version and has_as_of))
    if not selectable:
        if not methodology:
            issues.append(FieldIssue("methodology", "required, e.g. org-development"))
        if version and has_as_of:
            issues.append(FieldIssue("version", "give either version or as_of, not both"))
        elif not version and not has_as_of:
            issues.append(FieldIssue("version", "required: give version, or as_of to use the version in force on that date"))
        if not subject.kind:
            issues.append(FieldIssue("subject.kind", "required: the kind of subject scored (central, local or servant)"))
    inputs = {}
    raw = req.inputs
    for name in raw:
        value = raw[name]
        kind = value.WhichOneof("kind")
        if kind == "decimal":
            inputs[name] = _decimal(value.decimal)
        elif kind == "flag" or kind == "text":
            inputs[name] = getattr(value, kind)
        else:
            v = value_to_python(value, name, issues)
            if v is not None:
                inputs[name] = v
    only = req.only
    ev = EvalRequest(subject.id, subject.kind, inputs, list(only) if only else None, req.explain, req.language or DEFAULT_LANGUAGE)
    return (Selection(methodology, version, as_of) if selectable else None), ev, issues


def explanation_to_pb(item: ExplanationItem, rules_root: str = "") -> pb.Explanation:
    return pb.Explanation(name=item.name, kind=item.kind, label=item.label, formula=item.formula,
                          substituted=item.substituted, value=decimal_text(item.value), detail=item.detail,
                          file=_relative(item.file, rules_root), line=item.line, supplied=item.supplied,
                          grade=getattr(item, "grade", "") or "")


def result_to_pb(result: EvalResult, request_id: str, evaluation_id: str = "", rules_root: str = "",
                 out: pb.EvaluateResponse | None = None) -> pb.EvaluateResponse:
    """The response for a result; filled into ``out`` when given (a batch's new item: no copy)."""
    if out is None:
        out = pb.EvaluateResponse()
    out.request_id = request_id
    out.evaluation_id = evaluation_id
    out.methodology = result.methodology
    out.version = result.version
    out.content_hash = result.content_hash
    values = out.values
    for name, value in result.values.items():
        values[name] = format_decimal(value)
    if result.grades:
        grades = out.grades
        for name, grade in result.grades.items():
            grades[name] = grade
    if result.supplied:
        out.supplied.extend(result.supplied)
    if result.explanation:
        out.explanation.extend([explanation_to_pb(e, rules_root) for e in result.explanation])
    subject = out.subject
    subject.id = result.subject_id
    subject.kind = result.subject_kind
    return out


# ------------------------------------------------------------------------------ methodologies


def input_to_pb(spec) -> pb.InputField:
    out = pb.InputField(name=spec.name, type=INPUT_TYPES.get(spec.type, pb.INPUT_TYPE_UNSPECIFIED), type_name=spec.type,
                        min=decimal_text(spec.min), max=decimal_text(spec.max), labels=dict(spec.labels),
                        optional=bool(spec.optional), choices=list(spec.choices or ()),
                        fields=[input_to_pb(f) for f in spec.fields or ()], record=getattr(spec, "record", None) or "")
    if spec.default is not None:
        out.default_value.CopyFrom(python_to_value(spec.default))
    return out


def output_to_pb(spec) -> pb.OutputField:
    return pb.OutputField(name=spec.name, kind=OUTPUT_KINDS.get(spec.kind, pb.OUTPUT_KIND_UNSPECIFIED), kind_name=spec.kind,
                          labels=dict(spec.labels), min=decimal_text(spec.min), max=decimal_text(spec.max),
                          grades=list(spec.grades), unit=getattr(spec, "unit", "") or "")


def version_to_pb(cv, schema_kinds: list[str] | None = None, rules_root: str = "") -> pb.MethodologyVersion:
    out = pb.MethodologyVersion(version=cv.version, status=STATUSES.get(cv.status, pb.VERSION_STATUS_UNSPECIFIED),
                                basis=cv.basis or "", title=dict(cv.title or {}), subject_kinds=list(cv.subjects),
                                content_hash=cv.content_hash, extends=cv.extends or "",
                                source_path=_relative(cv.source_path, rules_root))
    if cv.effective_from:
        date_to_pb(cv.effective_from, out.effective_from)
    if cv.effective_to:
        date_to_pb(cv.effective_to, out.effective_to)
    for kind in schema_kinds or ():
        out.schemas.append(pb.SubjectSchema(subject_kind=kind, inputs=[input_to_pb(s) for s in cv.input_schema(kind)],
                                            outputs=[output_to_pb(s) for s in cv.outputs(kind)]))
    return out


@functools.lru_cache(maxsize=1024)
def _relative(path: str, root: str) -> str:
    """A rule file's path inside the rules folder: clients need not learn the server's layout."""
    if not root or not path:
        return path
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
    except ValueError:
        return Path(path).name


def methodology_to_pb(name: str, versions: list, schema_for=None, rules_root: str = "") -> pb.Methodology:
    """``schema_for(cv)`` gives the subject kinds whose schema to include for a version (None: no schema)."""
    latest = versions[-1] if versions else None
    return pb.Methodology(name=name, title=dict(latest.title or {}) if latest else {},
                          versions=[version_to_pb(cv, schema_for(cv) if schema_for else None, rules_root) for cv in versions])


# ------------------------------------------------------------------------------ diagnostics


def diagnostic_to_pb(d) -> pb.Diagnostic:
    return pb.Diagnostic(code=d.code, slug=getattr(d, "slug", ""), severity=SEVERITIES.get(d.severity, pb.SEVERITY_UNSPECIFIED),
                         message=d.message, file=d.file, line=d.line or 0, column=d.column or 0,
                         end_line=d.end_line or 0, end_column=d.end_column or 0,
                         source_line=(d.source_line or "").rstrip("\n"), formatted=d.format())
