"""Run the tests written in rule files (``test "…" { given … expect … }``).

A test computes only what its expectations need, so it names only the inputs those need; a
``given`` may also supply a computed value. Numbers compare exactly unless the test says ``within``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from . import ast
from .decimals import format_decimal
from .errors import BagalauError
from .evaluate import EvalRequest
from .registry import CompiledVersion


@dataclass
class TestOutcome:
    version: str
    name: str
    file: str
    line: int
    passed: bool
    failures: list[str]

    def format(self) -> str:
        head = f"{'PASS' if self.passed else 'FAIL'} {self.version}: {self.name} ({self.file}:{self.line})"
        return "\n".join([head] + [f"    {f}" for f in self.failures])


def run_test(cv: CompiledVersion, test: ast.TestDecl) -> TestOutcome:
    kind = test.subject_kind or cv.subjects[0]
    expects_error = [e for e in test.expects if e.kind == "error"]
    targets = [e.name for e in test.expects if e.kind in ("value", "grade")]
    inputs = {g.name: g.value for g in test.givens}
    if not targets:  # an error test: compute what the given values feed, so it needs no other inputs
        targets = _dependents(cv.model.scopes[kind], set(inputs))
    failures: list[str] = []
    try:
        result = cv.evaluate(EvalRequest(f"test:{test.name}", kind, inputs, only=targets or None))
    except BagalauError as err:
        if expects_error:
            for e in expects_error:
                if e.text and e.text.lower() not in str(err).lower():
                    failures.append(f"expected an error mentioning {e.text!r}, got: {err}")
        else:
            failures.append(f"evaluation failed: {err}")
        return TestOutcome(cv.key, test.name, test.span.file, test.span.line, not failures, failures)
    for e in test.expects:
        if e.kind == "error":
            failures.append(f"expected an error{f' mentioning {e.text!r}' if e.text else ''}, but evaluation succeeded")
        elif e.kind == "value":
            got = result.values.get(e.name)
            want = e.value
            if not isinstance(want, Decimal):
                failures.append(f"{e.name}: expected value {want!r} is not a number")
            elif got is None:
                failures.append(f"{e.name}: not computed")
            elif e.tolerance is None and got != want:
                failures.append(f"{e.name} = {format_decimal(got)}, expected {format_decimal(want)} (line {e.span.line})")
            elif e.tolerance is not None and abs(got - want) > e.tolerance:
                failures.append(f"{e.name} = {format_decimal(got)}, expected {format_decimal(want)} within "
                                f"{format_decimal(e.tolerance)} (line {e.span.line})")
        elif e.kind == "grade":
            got = result.grades.get(e.name)
            if got != e.value:
                failures.append(f"grade {e.name} = {got or 'none'}, expected {e.value} (line {e.span.line}; "
                                f"{e.name} = {format_decimal(result.values[e.name]) if e.name in result.values else '?'})")
    return TestOutcome(cv.key, test.name, test.span.file, test.span.line, not failures, failures)


def _dependents(scope, names: set[str]) -> list[str]:
    """Definitions that use any of the names, directly or through other definitions, in evaluation order."""
    hit = set()
    for d in scope.order:
        if scope.deps[d] & (names | hit):
            hit.add(d)
    return [d for d in scope.order if d in hit]


def run_tests(versions: list[CompiledVersion]) -> list[TestOutcome]:
    return [run_test(cv, t) for cv in versions for t in cv.model.tests]
