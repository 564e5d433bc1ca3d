"""A rule set: every methodology version in a rules folder, compiled, with version selection by date.

Files are ``<rules>/<methodology>/<version>.bgl``. Amendments are compiled after their bases. A
version without an end date stays in force until the day before the next version for the same
subject kind takes effect; explicit date ranges that overlap are an error (E701). Versions that
are or were in force are immutable: ``versions.lock`` in the rules folder records their content
hashes, and a changed one is refused (E702).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from .compiler import compile_text
from .diagnostics import Diagnostic, DiagnosticSink, Span, sort_diagnostics
from .errors import CompileFailed, NoVersionInForce, UnknownMethodology, UnknownVersion
from .evaluate import EvalRequest, EvalResult, Evaluator
from .inputs import InputCheck
from .model import VersionModel
from .parser import ParseFailed, parse

RULE_SUFFIX = ".bgl"
LOCK_FILE = "versions.lock"
LOCKED_STATUSES = ("in_force", "repealed")


@dataclass
class InputSpec:
    name: str
    type: str
    min: object = None
    max: object = None
    labels: dict = field(default_factory=dict)
    optional: bool = False
    default: object = None
    choices: list = field(default_factory=list)
    fields: list = field(default_factory=list)
    record: str | None = None
    min_open: bool = False  # min itself is not allowed (`> 0`)
    max_open: bool = False
    min_ref: str | None = None  # another input this one must not fall below
    max_ref: str | None = None  # another input this one must not exceed (`<= due_advanced`)


@dataclass
class OutputSpec:
    name: str
    kind: str
    labels: dict
    min: object
    max: object
    grades: list[str]
    unit: str = "points"


class CompiledVersion:
    """One compiled methodology version: its metadata, schema and evaluator."""

    def __init__(self, model: VersionModel):
        self.model = model
        self.evaluator = Evaluator(model)

    methodology = property(lambda self: self.model.methodology)
    version = property(lambda self: self.model.version)
    status = property(lambda self: self.model.status)
    effective_from = property(lambda self: self.model.effective_from)
    effective_to = property(lambda self: self.model.effective_to)
    basis = property(lambda self: self.model.basis)
    title = property(lambda self: self.model.title)
    subjects = property(lambda self: self.model.subjects)
    content_hash = property(lambda self: self.model.content_hash)
    source_path = property(lambda self: self.model.path)
    extends = property(lambda self: self.model.extends)

    @property
    def key(self) -> str:
        return self.model.key

    def _scope(self, kind):
        return self.model.scopes[kind or self.model.subjects[0]]

    def input_schema(self, kind: str | None = None) -> list[InputSpec]:
        scope = self._scope(kind)
        checks = self.evaluator.checks(scope.kind)

        def spec(decl, check: InputCheck) -> InputSpec:
            t = decl.type
            fields = []
            if t.kind == "list" and t.record in scope.records:  # the check holds one sub-check per field, in order
                fields = [spec(f, fc) for f, fc in zip(scope.records[t.record].fields, check.fields)]
            return InputSpec(decl.name, t.unit if t.kind == "number" else t.kind, check.lo, check.hi, dict(decl.labels),
                             decl.optional, decl.default if decl.has_default else None, list(t.choices), fields,
                             t.record or None, check.lo_open and check.lo is not None, check.hi_open and check.hi is not None,
                             check.lo_ref, check.hi_ref)

        return [spec(d, checks[n]) for n, d in scope.inputs.items()]

    def outputs(self, kind: str | None = None) -> list[OutputSpec]:
        scope = self._scope(kind)
        out = []
        for n in scope.order:
            d = scope.definitions[n]
            lo, hi = Evaluator.supplied_range(scope, n)
            grades = [b.name for b in scope.grades[n].bands] if n in scope.grades else []
            out.append(OutputSpec(n, d.kind, dict(d.labels), lo, hi, grades, scope.unit_of(n)))
        return out

    def evaluate(self, req: EvalRequest) -> EvalResult:
        return self.evaluator.evaluate(req)


class Registry:
    """All compiled versions of a rules folder. Immutable once built; reloads build a new one."""

    def __init__(self, versions: list[CompiledVersion], diagnostics: list[Diagnostic], root: str = ""):
        self.root = root
        self.diagnostics = diagnostics
        self._by_key = {(v.methodology, v.version): v for v in versions}
        h = hashlib.sha256()
        for key in sorted(self._by_key):
            h.update(f"{key[0]}@{key[1]}={self._by_key[key].content_hash}\n".encode())
        self.content_hash = "sha256:" + h.hexdigest()

    def methodologies(self) -> list[str]:
        return sorted({m for m, _ in self._by_key})

    def versions(self, methodology: str) -> list[CompiledVersion]:
        vs = [v for (m, _), v in self._by_key.items() if m == methodology]
        if not vs:
            raise UnknownMethodology(f"unknown methodology {methodology!r}; known: {', '.join(self.methodologies()) or 'none'}")
        return sorted(vs, key=lambda v: (v.effective_from or date.max, v.version))

    def get(self, methodology: str, version: str) -> CompiledVersion:
        vs = self.versions(methodology)
        for v in vs:
            if v.version == version:
                return v
        raise UnknownVersion(f"{methodology} has no version {version!r}; versions: {', '.join(v.version for v in vs)}")

    def resolve(self, spec: str) -> CompiledVersion:
        """``methodology@version``."""
        if "@" not in spec:
            raise UnknownVersion(f"{spec!r}: name a version as METHODOLOGY@VERSION, e.g. org-development@2020")
        m, v = spec.split("@", 1)
        return self.get(m, v)

    def in_force(self, methodology: str, as_of: date, kind: str | None = None) -> CompiledVersion:
        candidates = [v for v in self.versions(methodology) if v.status in LOCKED_STATUSES and (kind is None or kind in v.subjects)]
        for v, start, end in effective_periods(candidates, kind):
            if start <= as_of and (end is None or as_of <= end):
                return v
        known = ", ".join(f"{v.version} from {v.effective_from}" for v in candidates) or "none in force at any date"
        raise NoVersionInForce(f"no version of {methodology}{f' for {kind}' if kind else ''} is in force on {as_of.isoformat()} ({known})")

    def __iter__(self):
        return iter(sorted(self._by_key.values(), key=lambda v: (v.methodology, v.effective_from or date.max, v.version)))


def effective_periods(versions: list[CompiledVersion], kind: str | None):
    """(version, start, end) with implicit ends: the day before the next version starts."""
    dated = sorted((v for v in versions if v.effective_from), key=lambda v: v.effective_from)
    out = []
    for i, v in enumerate(dated):
        end = v.effective_to
        if end is None:
            later = [w.effective_from for w in dated[i + 1:] if w.effective_from > v.effective_from]
            end = later[0] - timedelta(days=1) if later else None
        out.append((v, v.effective_from, end))
    return out


def rule_files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            files.extend(sorted(p.rglob(f"*{RULE_SUFFIX}")))
        else:
            files.append(p)
    return files


def compile_paths(paths: list[Path], lock_root: Path | None = None) -> tuple[list[CompiledVersion], list[Diagnostic]]:
    """Compile every rule file under the paths (bases before amendments). Returns versions and diagnostics."""
    files = rule_files(paths)
    diags: list[Diagnostic] = []
    texts: dict[str, str] = {}
    headers: dict[str, tuple[str, str, str | None]] = {}
    for f in files:
        name = str(f)
        try:
            texts[name] = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            sink = DiagnosticSink()
            sink.report("E102", Span(name, 1, 1), f"cannot read the file: {e.strerror if isinstance(e, OSError) else e}")
            diags.extend(sink.items)
            continue
        try:
            rf = parse(texts[name], name)
            headers[name] = (rf.header.methodology, rf.header.version, rf.header.extends)
        except ParseFailed as e:
            diags.extend(e.diagnostics)
    compiled: dict[tuple[str, str], VersionModel] = {}
    failed: set[tuple[str, str]] = set()
    unique: dict[tuple[str, str], str] = {}  # methodology@version -> the file that defines it first
    for name, (m, v, _) in headers.items():
        if (m, v) in unique:
            sink = DiagnosticSink({name: texts[name]})
            sink.report("E703", Span(name, 1, 1), f"{m}@{v} is also defined in {unique[(m, v)]}")
            diags.extend(sink.items)
        else:
            unique[(m, v)] = name
    # bases before amendments: repeat until nothing more compiles
    todo = list(unique.values())
    progress = True
    while todo and progress:
        progress = False
        for name in list(todo):
            m, v, base = headers[name]
            if base and (m, base) not in compiled and (m, base) not in failed and (m, base) in unique:
                continue  # wait for the base
            model, ds = compile_text(texts[name], name, lambda mm, vv: compiled.get((mm, vv)))
            diags.extend(ds)
            if model is None:
                failed.add((m, v))
            else:
                compiled[(m, v)] = model
            todo.remove(name)
            progress = True
    for name in todo:  # amendments in a cycle of bases
        m, v, base = headers[name]
        sink = DiagnosticSink({name: texts[name]})
        sink.report("E603", Span(name, 1, 1), f"base version {m}@{base} could not be compiled first (circular extends?)")
        diags.extend(sink.items)
    versions = [CompiledVersion(m) for m in compiled.values()]
    diags.extend(check_versions_in_time(versions))
    if lock_root is not None:
        diags.extend(check_lock(versions, lock_root))
    return versions, sort_diagnostics(diags)


def check_versions_in_time(versions: list[CompiledVersion]) -> list[Diagnostic]:
    """E701: two versions of a methodology in force on the same day for the same subject kind."""
    out: list[Diagnostic] = []
    by_meth: dict[str, list[CompiledVersion]] = {}
    for v in versions:
        if v.status in LOCKED_STATUSES and v.effective_from:
            by_meth.setdefault(v.methodology, []).append(v)
    for meth, vs in by_meth.items():
        kinds = sorted({k for v in vs for k in v.subjects})
        for kind in kinds:
            periods = effective_periods([v for v in vs if kind in v.subjects], kind)
            for i, (a, a_start, a_end) in enumerate(periods):
                for b, b_start, b_end in periods[i + 1:]:
                    if a_end is None or b_start <= a_end:  # implicit ends never overlap; explicit ones may
                        sink = DiagnosticSink({b.model.path: b.model.source_text})
                        sink.report("E701", b.model.header_span,
                                    f"{b.key} ({b_start} – {b_end or 'open'}) overlaps {a.key} ({a_start} – {a_end or 'open'}) "
                                    f"for {kind}; only one version can be in force on a date")
                        out.extend(sink.items)
    return out


def read_lock(root: Path) -> dict[str, str]:
    p = root / LOCK_FILE
    if not p.exists():
        return {}
    return json.loads(p.read_text(encoding="utf-8")).get("versions", {})


def check_lock(versions: list[CompiledVersion], root: Path) -> list[Diagnostic]:
    locked = read_lock(root)
    out = []
    for v in versions:
        want = locked.get(v.key)
        if want and want != v.content_hash:
            sink = DiagnosticSink({v.model.path: v.model.source_text})
            sink.report("E702", v.model.header_span,
                        f"{v.key} is locked ({v.status}) with hash {want[:19]}…, but its content now hashes to "
                        f"{v.content_hash[:19]}…; versions that are or were in force are immutable, so create a new "
                        f"version (for example one that `extends \"{v.version}\"`) instead of editing this one")
            out.extend(sink.items)
    return out


def write_lock(versions: list[CompiledVersion], root: Path) -> dict[str, str]:
    """Record the hash of every in-force or repealed version not yet locked. Returns the lock."""
    locked = read_lock(root)
    for v in versions:
        if v.status in LOCKED_STATUSES and v.key not in locked:
            locked[v.key] = v.content_hash
    (root / LOCK_FILE).write_text(json.dumps({"versions": dict(sorted(locked.items()))}, indent=2) + "\n", encoding="utf-8")
    return locked


def load_registry(root: Path | str) -> Registry:
    """Compile a rules folder. Raises CompileFailed when any file has errors (warnings are kept)."""
    root = Path(root)
    if not root.is_dir():
        raise CompileFailed([_missing_folder(root)])
    versions, diags = compile_paths([root], lock_root=root)
    if any(d.severity == "error" for d in diags):
        raise CompileFailed(diags)
    return Registry(versions, diags, str(root))


def _missing_folder(root: Path) -> Diagnostic:
    sink = DiagnosticSink()
    return sink.report("E102", Span(str(root), 0, 0), "the rules folder does not exist")
