"""Errors the library raises to its callers (the CLI and the gRPC service map them to exits and statuses)."""

from __future__ import annotations

from dataclasses import dataclass


class BagalauError(Exception):
    """Base of every error a caller can act on. Its message is safe to show to a client."""


@dataclass(frozen=True)
class FieldIssue:
    field: str  # "leaders_left", "ktis[2].quality", "subject.kind", "only"
    message: str  # what is wrong and what was expected

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class InputError(BagalauError):
    """A request's inputs are missing or invalid: every offending field is listed."""

    def __init__(self, issues: list[FieldIssue]):
        self.issues = sorted(issues, key=lambda i: i.field)
        names = ", ".join(dict.fromkeys(i.field for i in self.issues))
        super().__init__(f"invalid request ({len(self.issues)} problem{'s' if len(self.issues) != 1 else ''}: {names}): "
                         + "; ".join(str(i) for i in self.issues))


class EvaluationFailed(BagalauError):
    """The inputs were valid, but a value could not be computed (the mean of an empty list, say)."""


class UnknownMethodology(BagalauError):
    pass


class UnknownVersion(BagalauError):
    pass


class NoVersionInForce(BagalauError):
    pass


class CompileFailed(BagalauError):
    def __init__(self, diagnostics):
        self.diagnostics = diagnostics
        errors = [d for d in diagnostics if d.severity == "error"]
        super().__init__(f"{len(errors)} error(s) in the rules:\n" + "\n".join(d.format() for d in errors))
