"""The ``bagalau`` commands that need no server: check, test, eval, lock (and diff, impact).

Exit codes: 0 success; 1 the rules have errors, a test failed, or a request could not be scored;
2 misuse (bad arguments, unknown methodology or version, unreadable input file); 3 the rules
folder does not compile, so nothing could be evaluated.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from pathlib import Path
from typing import Any

from . import decimals
from .decimals import format_decimal
from .errors import BagalauError, CompileFailed, FieldIssue, InputError, NoVersionInForce, UnknownMethodology, UnknownVersion
from .evaluate import LANGUAGES, EvalRequest, EvalResult
from .registry import Registry, compile_paths, load_registry, rule_files, write_lock
from .testing import run_tests

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_RULES = 0, 1, 2, 3


class CliError(Exception):
    def __init__(self, message: str, code: int = EXIT_USAGE):
        super().__init__(message)
        self.code = code


def default_rules() -> str:
    return os.environ.get("BAGALAU_RULES", "rules")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bagalau", description="Score state bodies and civil servants under "
                                     "Kazakhstan's evaluation methodologies, from rule files.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    parser.subcommands = sub

    p = sub.add_parser("check", help="compile rule files and print every diagnostic")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="rule files or folders")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--no-warnings", action="store_true", help="print errors only")

    p = sub.add_parser("test", help="run the tests written in rule files")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    p.add_argument("--verbose", "-v", action="store_true", help="list passing tests too")

    p = sub.add_parser("eval", help="score subjects from a JSON or JSON Lines file")
    p.add_argument("target", metavar="METHODOLOGY[@VERSION]", help="e.g. org-development@2020; without a version, give --as-of")
    p.add_argument("--input", "-i", required=True, metavar="FILE", help="one JSON request, or JSON Lines ('-' reads standard input)")
    p.add_argument("--as-of", type=_parse_date, metavar="DATE", help="use the version in force on this date (YYYY-MM-DD)")
    p.add_argument("--only", type=lambda s: [x.strip() for x in s.split(",") if x.strip()], metavar="NAMES",
                   help="compute only these values (comma-separated) and what they need")
    p.add_argument("--explain", action="store_true", help="explain every value")
    p.add_argument("--lang", choices=LANGUAGES, default="kk", help="language of labels in explanations")
    p.add_argument("--format", choices=("json", "text"), default="json")
    p.add_argument("--rules", default=default_rules(), metavar="DIR", help="rules folder (default: $BAGALAU_RULES or rules)")

    p = sub.add_parser("lock", help="record the content hash of every in-force or repealed version in versions.lock")
    p.add_argument("--rules", default=default_rules(), metavar="DIR")

    from . import diffcli  # semantic diff and impact analysis register their own subcommands

    diffcli.register(sub)
    return parser


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write YYYY-MM-DD") from None


def _lock_root(paths: list[Path]) -> Path | None:
    for p in paths:
        for candidate in [p if p.is_dir() else p.parent, *(p if p.is_dir() else p.parent).resolve().parents]:
            if (candidate / "versions.lock").exists():
                return candidate
    return None


# ---------------------------------------------------------------- commands


def cmd_check(args) -> int:
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise CliError(f"no such file or folder: {', '.join(missing)}")
    files = rule_files(args.paths)
    versions, diags = compile_paths(args.paths, lock_root=_lock_root(args.paths))
    errors = [d for d in diags if d.severity == "error"]
    warnings = [d for d in diags if d.severity == "warning"]
    if args.format == "json":
        print(decimals.dumps({"files": len(files), "versions": [v.key for v in versions],
                              "errors": [d.to_json() for d in errors],
                              "warnings": [] if args.no_warnings else [d.to_json() for d in warnings]}, indent=2))
    else:
        for d in errors:
            print(d.format())
        if warnings and not args.no_warnings:
            if errors:
                print()
            for d in warnings:
                print(d.format())
        print(f"{len(files)} file(s), {len(versions)} version(s) compiled: {len(errors)} error(s), {len(warnings)} warning(s)")
    return EXIT_FAILED if errors else EXIT_OK


def cmd_test(args) -> int:
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        raise CliError(f"no such file or folder: {', '.join(missing)}")
    versions, diags = compile_paths(args.paths)
    errors = [d for d in diags if d.severity == "error"]
    for d in errors:
        print(d.format())
    outcomes = run_tests(versions)
    for o in outcomes:
        if not o.passed or args.verbose:
            print(o.format())
    passed = sum(o.passed for o in outcomes)
    failed = len(outcomes) - passed
    if errors:
        print(f"{len(errors)} compile error(s): the tests of those versions did not run")
    print(f"{passed} passed, {failed} failed")
    return EXIT_FAILED if failed or errors else EXIT_OK


def read_requests(path: str) -> list[tuple[int, Any]]:
    """(line number, parsed request or an Exception) for a JSON or JSON Lines file."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CliError(f"cannot read {path}: {e.strerror if isinstance(e, OSError) else e}") from None
    try:
        whole = decimals.loads(text)
        if isinstance(whole, dict):
            return [(1, whole)]
        if isinstance(whole, list):
            return [(i + 1, r) for i, r in enumerate(whole)]
    except ValueError:
        pass
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((n, decimals.loads(line)))
        except ValueError as e:
            out.append((n, ValueError(f"line {n} is not valid JSON: {e}")))
    if not out:
        raise CliError(f"{path} holds no request")
    return out


def to_request(raw: Any, only, explain, language) -> EvalRequest:
    issues = []
    if not isinstance(raw, dict):
        raise InputError([FieldIssue("request", "expected an object {\"subject\": {…}, \"inputs\": {…}}")])
    subject = raw.get("subject")
    if not isinstance(subject, dict):
        issues.append(FieldIssue("subject", "missing; expected {\"id\": \"…\", \"kind\": \"central\"}"))
        subject = {}
    elif not isinstance(subject.get("kind"), str) or not subject.get("kind"):
        issues.append(FieldIssue("subject.kind", "missing; expected central, local or servant"))
    inputs = raw.get("inputs", {})
    if not isinstance(inputs, dict):
        issues.append(FieldIssue("inputs", "expected an object of name: value"))
    for k in raw:
        if k not in ("subject", "inputs", "only"):
            issues.append(FieldIssue(k, "unknown field; a request has subject, inputs and optionally only"))
    if issues:
        raise InputError(issues)
    return EvalRequest(str(subject.get("id", "")), subject["kind"], inputs, only or raw.get("only"), explain, language)


def load_rules(path: str) -> Registry:
    try:
        return load_registry(path)
    except CompileFailed as e:
        raise CliError(f"the rules in {path} do not compile:\n{e}", EXIT_RULES) from None


def cmd_eval(args) -> int:
    reg = load_rules(args.rules)
    methodology, _, version = args.target.partition("@")
    try:
        reg.versions(methodology)
        fixed = reg.get(methodology, version) if version else None
    except (UnknownMethodology, UnknownVersion) as e:
        raise CliError(str(e)) from None
    if fixed is None and args.as_of is None:
        raise CliError(f"name a version ({methodology}@VERSION) or a date (--as-of YYYY-MM-DD)")
    requests = read_requests(args.input)
    failed = 0
    for line, raw in requests:
        try:
            if isinstance(raw, Exception):
                raise InputError([FieldIssue("request", str(raw))])
            req = to_request(raw, args.only, args.explain, args.lang)
            cv = fixed or reg.in_force(methodology, args.as_of, req.subject_kind)
            result = cv.evaluate(req)
        except BagalauError as e:
            failed += 1
            _print_error(args.format, line, e, len(requests) > 1)
            continue
        _print_result(args.format, result)
    return EXIT_FAILED if failed else EXIT_OK


def _print_error(fmt: str, line: int, e: BagalauError, many: bool) -> None:
    if fmt == "json":
        err: dict = {"type": type(e).__name__, "message": str(e)}
        if isinstance(e, InputError):
            err["issues"] = [{"field": i.field, "message": i.message} for i in e.issues]
        print(decimals.dumps({"line": line, "error": err}))
    else:
        print(f"{'line ' + str(line) + ': ' if many else ''}error: {e}", file=sys.stdout)


def _print_result(fmt: str, r: EvalResult) -> None:
    if fmt == "json":
        print(decimals.dumps(r.to_json()))
        return
    print(f"{r.methodology}@{r.version} for {r.subject_kind} {r.subject_id}  ({r.content_hash[:19]}…)")
    width = max((len(n) for n in r.values), default=0)
    for n, v in r.values.items():
        mark = "  (supplied)" if n in r.supplied else ""
        grade = f"  [{r.grades[n]}]" if n in r.grades else ""
        print(f"  {n.ljust(width)}  {format_decimal(v)}{grade}{mark}")
    if r.explanation:
        print("explanation:")
        for e in r.explanation:
            print(f"  {e.name} — {e.label} ({e.kind}, {e.file}:{e.line})")
            print(f"      formula:  {e.formula}")
            if e.substituted:
                print(f"      values:   {e.substituted}")
            if e.detail:
                print(f"      detail:   {e.detail}")
            print(f"      = {format_decimal(e.value) if e.value is not None else '—'}" + (f"  [{e.grade}]" if e.grade else ""))


def cmd_lock(args) -> int:
    root = Path(args.rules)
    versions, diags = compile_paths([root])
    errors = [d for d in diags if d.severity == "error"]
    if errors:
        raise CliError("the rules do not compile; fix them before locking:\n" + "\n".join(d.format() for d in errors), EXIT_RULES)
    locked = write_lock(versions, root)
    print(f"{len(locked)} version(s) locked in {root / 'versions.lock'}")
    return EXIT_OK


COMMANDS = {"check": cmd_check, "test": cmd_test, "eval": cmd_eval, "lock": cmd_lock}


def run(args) -> int:
    handler = getattr(args, "handler", None) or COMMANDS[args.command]
    try:
        return handler(args)
    except CliError as e:
        print(f"bagalau {args.command}: {e}", file=sys.stderr)
        return e.code
    except NoVersionInForce as e:
        print(f"bagalau {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
