"""`bagalau diff` and `bagalau impact`: the semantic diff and impact analysis commands.

``register(subparsers)`` adds both to the CLI (``dsl.cli.build_parser`` calls it). Exit codes as in
``dsl.cli``: 0 ok; 1 some subjects could not be scored (impact); 2 misuse (unknown version,
unreadable file, unknown value name); 3 the rules do not compile.

A version is named ``METHODOLOGY@VERSION`` (looked up in ``--rules``), or given as the path of a
rule file (compiled on its own; an amendment's base is looked up in ``--rules``), so two versions
written independently, in different folders, can be compared too.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from .cli import EXIT_FAILED, EXIT_OK, EXIT_RULES, CliError, default_rules, load_rules, read_requests
from .errors import BagalauError, UnknownMethodology, UnknownVersion
from .evaluate import LANGUAGES


def register(subparsers) -> None:
    from .report import DIFF_FORMATS, IMPACT_FORMATS

    p = subparsers.add_parser("diff", help="what changed in meaning between two versions (inputs, formulas, weights, bands, …)",
                              description="Compare two methodology versions by name, not by text: inputs, definitions, "
                                          "formulas and the constants in them, weights, maxima, bonus and penalty rules, "
                                          "band tables, grade scales, labels and metadata.")
    p.add_argument("old", metavar="A", help="the old version: METHODOLOGY@VERSION (e.g. org-development@2020) or a .bgl file")
    p.add_argument("new", metavar="B", help="the new version, likewise")
    p.add_argument("--format", "-f", choices=DIFF_FORMATS, default="text")
    p.add_argument("--lang", choices=LANGUAGES, default="kk", help="language of labels (and of the html page)")
    p.add_argument("--rules", default=default_rules(), metavar="DIR", help="rules folder (default: $BAGALAU_RULES or rules)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colours in the text view (auto: when standard output is a terminal)")
    p.set_defaults(handler=cmd_diff)

    p = subparsers.add_parser("impact", help="score subjects under two versions and compare grades, ranks and scores",
                              description="Score every subject of a JSON Lines file under both versions; report the "
                                          "main scores old and new, the difference, grades, the grade transition "
                                          "matrix, rank changes and the largest movers.")
    p.add_argument("old", metavar="A", help="the old version: METHODOLOGY@VERSION or a .bgl file")
    p.add_argument("new", metavar="B", help="the new version, likewise")
    p.add_argument("--input", "-i", required=True, metavar="SUBJECTS.jsonl",
                   help="one request per line: {\"subject\": {\"id\", \"kind\", \"name\"}, \"inputs\": {…}} ('-': standard input)")
    p.add_argument("--format", "-f", choices=IMPACT_FORMATS, default="text")
    p.add_argument("--values", type=_names, default=[], metavar="NAMES",
                   help="more values to compare, comma-separated (the graded ones are always compared)")
    p.add_argument("--rank-by", metavar="NAME", help="the value to rank by (default: the graded score)")
    p.add_argument("--movers", type=int, default=10, metavar="N", help="how many largest movers to list (default 10)")
    p.add_argument("--lang", choices=LANGUAGES, default="kk", help="language of labels (and of the html page)")
    p.add_argument("--rules", default=default_rules(), metavar="DIR", help="rules folder (default: $BAGALAU_RULES or rules)")
    p.add_argument("--output", "-o", metavar="FILE", help="write here instead of standard output")
    p.add_argument("--progress", action="store_true", help="show progress on standard error even when it is not a terminal")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.set_defaults(handler=cmd_impact)


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


# ---------------------------------------------------------------- versions


def resolve_version(registry, spec: str):
    """``METHODOLOGY@VERSION`` from the registry, or a rule file compiled on its own."""

    path = Path(spec)
    if spec.endswith(".bgl") or (path.exists() and path.is_file()):
        return _compile_file(registry, path)
    try:
        return registry.resolve(spec)
    except (UnknownMethodology, UnknownVersion) as e:
        raise CliError(str(e)) from None


def _compile_file(registry, path: Path):
    from .compiler import compile_text
    from .registry import CompiledVersion

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"cannot read {path}: {e.strerror if isinstance(e, OSError) else e}") from None

    def lookup(methodology: str, version: str):
        if registry is None:
            return None
        try:
            return registry.get(methodology, version).model
        except BagalauError:
            return None

    model, diags = compile_text(text, str(path), lookup)
    if model is None:
        errors = "\n".join(d.format() for d in diags if d.severity == "error")
        raise CliError(f"{path} does not compile:\n{errors}", EXIT_RULES)
    return CompiledVersion(model)


def _needs_registry(*specs: str) -> bool:
    return any(not (s.endswith(".bgl") or Path(s).is_file()) for s in specs)


def _registry(args, *specs):

    if _needs_registry(*specs):
        return load_rules(args.rules)
    try:  # files only: the registry is needed just for an amendment's base
        return load_rules(args.rules) if Path(args.rules).is_dir() else None
    except Exception:  # noqa: BLE001 - a broken rules folder does not stop comparing two files
        return None


# ---------------------------------------------------------------- output


def _use_color(args, to_file: bool) -> bool:
    if args.color == "always":
        return True
    if args.color == "never" or to_file or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def _write(args, text: str) -> None:

    if args.output:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise CliError(f"cannot write {args.output}: {e.strerror}") from None
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


# ---------------------------------------------------------------- commands


def cmd_diff(args) -> int:
    from .diff import diff_versions, registry_sources
    from .report import render_diff

    registry = _registry(args, args.old, args.new)
    old = resolve_version(registry, args.old)
    new = resolve_version(registry, args.new)
    sources = registry_sources(registry, old, new) if registry is not None else {}
    result = diff_versions(old, new, sources)
    _write(args, render_diff(result, args.format, args.lang, _use_color(args, bool(args.output)) if args.format == "text" else False))
    return EXIT_OK


class _Progress:
    """``impact: 120/1000 subjects`` on standard error, at most a few times a second."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.last = 0.0
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        import time

        now = time.monotonic()
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        self.shown = True
        pct = f" ({done * 100 // total}%)" if total else ""
        end = "\n" if done >= total else ""
        sys.stderr.write(f"\rimpact: {done}/{total} subjects scored under both versions{pct}{end}")
        sys.stderr.flush()


def cmd_impact(args) -> int:
    from .impact import ImpactAnalysis
    from .report import render_impact

    registry = _registry(args, args.old, args.new)
    old = resolve_version(registry, args.old)
    new = resolve_version(registry, args.new)
    if args.input != "-" and not Path(args.input).is_file():
        raise CliError(f"cannot read {args.input}: no such file")
    requests = read_requests(args.input)
    if args.movers < 0:
        raise CliError("--movers must be 0 or more")
    try:
        analysis = ImpactAnalysis(old, new, args.values, args.rank_by, args.movers, args.lang)
    except ValueError as e:
        raise CliError(str(e)) from None
    progress = _Progress(args.progress or sys.stderr.isatty())
    analysis.add_all(requests, progress, len(requests))
    report = analysis.report()
    _write(args, render_impact(report, args.format, args.lang, _use_color(args, bool(args.output)) if args.format == "text" else False))
    return EXIT_FAILED if any(s.failed for s in report.subjects) else EXIT_OK
