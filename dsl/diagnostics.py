"""Diagnostics: coded problems with a location, reported all at once and sorted.

Every check the compiler makes has a stable code listed in ``CODES``; tests hold one case per code.
Errors stop a rule set from being used; warnings are reported separately and do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# code -> (severity, short slug). The slug is part of the stable interface (editors match on it).
CODES: dict[str, tuple[str, str]] = {
    "E100": ("error", "syntax"),
    "E101": ("error", "bad-character"),
    "E102": ("error", "unreadable-file"),
    "E110": ("error", "bad-header"),
    "E200": ("error", "unknown-name"),
    "E201": ("error", "duplicate-name"),
    "W202": ("warning", "unused-name"),
    "E203": ("error", "cycle"),
    "E204": ("error", "unknown-function"),
    "E205": ("error", "wrong-arguments"),
    "E206": ("error", "unknown-field"),
    "E207": ("error", "unknown-subject-kind"),
    "E300": ("error", "type-mismatch"),
    "E301": ("error", "unit-mismatch"),
    "E302": ("error", "bad-literal"),
    "E400": ("error", "weights-not-one"),
    "E401": ("error", "band-gap"),
    "E402": ("error", "band-overlap"),
    "E403": ("error", "grade-gap"),
    "E404": ("error", "grade-overlap"),
    "E405": ("error", "empty-interval"),
    "E500": ("error", "above-maximum"),
    "W501": ("warning", "below-minimum"),
    "E502": ("error", "division-by-zero"),
    "E503": ("error", "bad-bounds"),
    "W504": ("warning", "unbounded"),
    "E600": ("error", "override-unknown"),
    "E601": ("error", "remove-unknown"),
    "E602": ("error", "redefined-without-override"),
    "E603": ("error", "unknown-base-version"),
    "E604": ("error", "override-outside-amendment"),
    "E700": ("error", "bad-metadata"),
    "E701": ("error", "version-overlap"),
    "E702": ("error", "locked-version-changed"),
    "E703": ("error", "duplicate-version"),
    "E800": ("error", "bad-test"),
}


@dataclass(frozen=True, order=True)
class Span:
    """A place in a rule file: 1-based line and column, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int = 0
    end_column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NO_SPAN = Span("<none>", 0, 0)


@dataclass
class Diagnostic:
    code: str
    message: str
    span: Span
    source_line: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def severity(self) -> str:
        return CODES[self.code][0]

    @property
    def slug(self) -> str:
        return CODES[self.code][1]

    @property
    def file(self) -> str:
        return self.span.file

    @property
    def line(self) -> int:
        return self.span.line

    @property
    def column(self) -> int:
        return self.span.column

    @property
    def end_line(self) -> int:
        return self.span.end_line

    @property
    def end_column(self) -> int:
        return self.span.end_column

    def sort_key(self):
        return (self.span.file, self.span.line, self.span.column, self.code, self.message)

    def format(self) -> str:
        """``file:line:col: error E201 duplicate-name: message`` then the line and a caret."""
        head = f"{self.span}: {self.severity} {self.code} {self.slug}: {self.message}"
        lines = [head]
        if self.source_line:
            text = self.source_line.rstrip("\n")
            lines.append(f"    {text}")
            width = 1
            if self.span.end_line == self.span.line and self.span.end_column > self.span.column:
                width = self.span.end_column - self.span.column
            lines.append("    " + " " * max(self.span.column - 1, 0) + "^" * max(width, 1))
        lines.extend(f"    note: {n}" for n in self.notes)
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {
            "code": self.code,
            "slug": self.slug,
            "severity": self.severity,
            "message": self.message,
            "file": self.span.file,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "source_line": self.source_line.rstrip("\n"),
        }


class DiagnosticSink:
    """Collects diagnostics, filling in the source line from the files it knows."""

    def __init__(self, sources: dict[str, str] | None = None):
        self.sources: dict[str, list[str]] = {}
        for name, text in (sources or {}).items():
            self.add_source(name, text)
        self.items: list[Diagnostic] = []

    def add_source(self, name: str, text: str) -> None:
        self.sources[name] = text.splitlines()

    def report(self, code: str, span: Span, message: str, notes: list[str] | None = None) -> Diagnostic:
        if code not in CODES:
            raise KeyError(f"unregistered diagnostic code {code}")
        lines = self.sources.get(span.file, [])
        source_line = lines[span.line - 1] if 0 < span.line <= len(lines) else ""
        diag = Diagnostic(code, message, span, source_line, list(notes or []))
        self.items.append(diag)
        return diag

    def extend(self, diags: list[Diagnostic]) -> None:
        self.items.extend(diags)

    @property
    def errors(self) -> list[Diagnostic]:
        return sort_diagnostics([d for d in self.items if d.severity == "error"])

    @property
    def warnings(self) -> list[Diagnostic]:
        return sort_diagnostics([d for d in self.items if d.severity == "warning"])

    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)


def sort_diagnostics(diags: list[Diagnostic]) -> list[Diagnostic]:
    seen = set()
    out = []
    for d in sorted(diags, key=Diagnostic.sort_key):
        # one report per place and code: a definition shared by several subject kinds is checked once per kind
        key = d.sort_key()[:4]
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out
