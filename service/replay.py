"""Re-run a recorded evaluation with today's rules and engine, and compare the results."""

from __future__ import annotations

from dataclasses import dataclass, field

from dsl.errors import BagalauError

from . import convert
from .audit import AuditRecord
from .errors import RequestInvalid, status_for
from .recording import request_of, response_of


@dataclass
class ReplayOutcome:
    same: bool
    lines: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(self.lines)


def replay(record: AuditRecord, registry) -> ReplayOutcome:
    request = request_of(record)
    recorded = response_of(record)
    lines = [f"evaluation {record.evaluation_id}: {record.methodology}@{record.version} for {record.subject_kind} "
             f"{record.subject_id or '(no id)'}, recorded {record.recorded_at}"]
    try:
        cv = registry.get(record.methodology, record.version)  # the version that was used, even if asked by date
    except BagalauError as e:
        lines += [f"cannot replay: {e}", "differs: today's rules cannot score it"]
        return ReplayOutcome(False, lines)
    same_rules = cv.content_hash == record.content_hash
    lines.append(f"rules: recorded {record.content_hash}, today {cv.content_hash} ({'same' if same_rules else 'changed'})")
    _, ev, issues = convert.evaluation_from_pb(request)
    try:
        if issues:
            raise RequestInvalid(issues)
        now = convert.result_to_pb(cv.evaluate(ev), request.request_id)
    except BagalauError as e:
        lines += [f"today's engine refuses it: {status_for(e).message}", "differs"]
        return ReplayOutcome(False, lines)
    names = list(dict.fromkeys([*recorded.values, *now.values]))
    width = max((len(n) for n in names), default=0)
    same = True
    for n in names:
        was, is_ = recorded.values.get(n), now.values.get(n)
        gw, gi = recorded.grades.get(n, ""), now.grades.get(n, "")
        ok = was == is_ and gw == gi
        same &= ok
        shown = lambda v, g: ("—" if v is None else v) + (f" [{g}]" if g else "")  # noqa: E731
        lines.append(f"  {'  ' if ok else '≠ '}{n.ljust(width)}  recorded {shown(was, gw)}"
                     + ("" if ok else f", today {shown(is_, gi)}"))
    if list(recorded.supplied) != list(now.supplied):
        same = False
        lines.append(f"  ≠ supplied values: recorded {list(recorded.supplied)}, today {list(now.supplied)}")
    lines.append("same result" if same else "differs")
    return ReplayOutcome(same, lines)
