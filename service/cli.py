"""The `bagalau` console script: the library's commands (dsl.cli) plus the service's (serve, audit).

Exit codes follow dsl.cli: 0 success; 1 failed (a tampered audit log, a replay that differs);
2 misuse (bad arguments or settings, unknown evaluation id, unreachable audit database);
3 the rules folder does not compile.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dsl import cli as dsl_cli

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_RULES = 0, 1, 2, 3
SERVICE_COMMANDS = ("serve", "audit")


def build_parser() -> argparse.ArgumentParser:
    parser = dsl_cli.build_parser()
    sub = parser.subcommands

    p = sub.add_parser("serve", help="run the gRPC scoring service (settings: BAGALAU_* environment variables, then these flags)")
    p.add_argument("--address", metavar="HOST:PORT", help="listen here (default 127.0.0.1:50051; port 0 picks a free port)")
    p.add_argument("--rules", type=Path, metavar="DIR", help="rules folder (default rules/ in the current directory)")
    p.add_argument("--audit", metavar="URL", help="audit log: sqlite:///PATH, postgresql://USER@HOST/DB, or none "
                   "(default sqlite:///var/audit.db)")
    p.add_argument("--plaintext", action="store_true", default=None, help="serve without TLS on a non-loopback address")
    p.add_argument("--tls-cert", type=Path, metavar="PEM", help="server certificate chain")
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="server private key")
    p.add_argument("--tls-client-ca", type=Path, metavar="PEM", help="require client certificates signed by this CA (mutual TLS)")
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="Prometheus metrics port (default 9464; 0 turns it off)")
    p.add_argument("--grace", type=float, dest="grace_seconds", metavar="SECONDS",
                   help="on SIGTERM, time calls in flight get to finish (default 10)")
    p.add_argument("--no-reload", action="store_false", dest="reload", default=None, help="do not watch the rules folder")
    p.add_argument("--log-format", choices=("auto", "json", "console"))

    p = sub.add_parser("audit", help="check, show and replay the audit log of evaluations")
    audit_sub = p.add_subparsers(dest="audit_command", metavar="ACTION")
    audit_sub.required = True
    url_help = "audit log URL (default: $BAGALAU_AUDIT or sqlite:///var/audit.db)"
    a = audit_sub.add_parser("verify", help="check the hash chain; exit 1 naming every edited or deleted record")
    a.add_argument("--audit", metavar="URL", help=url_help)
    a = audit_sub.add_parser("show", help="print a recorded evaluation as JSON")
    a.add_argument("evaluation_id", metavar="ID")
    a.add_argument("--audit", metavar="URL", help=url_help)
    a = audit_sub.add_parser("replay", help="re-run a recorded evaluation with today's rules; exit 1 if the result differs")
    a.add_argument("evaluation_id", metavar="ID")
    a.add_argument("--audit", metavar="URL", help=url_help)
    a.add_argument("--rules", type=Path, metavar="DIR", help="rules folder (default: $BAGALAU_RULES or rules)")
    return parser


# ------------------------------------------------------------------------------ serve


def cmd_serve(args) -> int:
    from pydantic import ValidationError

    from .server import serve
    from .settings import Settings

    overrides = {k: getattr(args, k) for k in ("address", "rules", "audit", "plaintext", "tls_cert", "tls_key", "tls_client_ca",
                                               "metrics_port", "grace_seconds", "reload", "log_format")
                 if getattr(args, k) is not None}
    try:
        settings = Settings(**overrides)
    except ValidationError as e:
        for err in e.errors():
            name = ".".join(str(x) for x in err["loc"])
            where = f"{name} (BAGALAU_{name.upper()})" if name else "settings"
            message = err["msg"].removeprefix("Value error, ")
            print(f"bagalau serve: {where}: {message}", file=sys.stderr)
        return EXIT_USAGE
    return serve(settings)


# ------------------------------------------------------------------------------ audit


def _audit_url(arg: str | None) -> str:
    from .settings import Settings

    return arg or os.environ.get("BAGALAU_AUDIT") or Settings.model_fields["audit"].default


def cmd_audit(args) -> int:
    from .audit import AuditError, open_store, sqlite_path, verify

    url = _audit_url(args.audit)
    if url.lower() in ("none", "off"):
        print("bagalau audit: the audit log is off (BAGALAU_AUDIT=none)", file=sys.stderr)
        return EXIT_USAGE
    try:
        if url.startswith("sqlite:///"):
            path = sqlite_path(url)
            if not path.exists():  # reading must not create an empty log
                print(f"bagalau audit: no audit log at {path}", file=sys.stderr)
                return EXIT_USAGE
        store = open_store(url)
    except AuditError as e:
        print(f"bagalau audit: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.audit_command == "verify":
            report = verify(store)
            for problem in report.problems:
                print(f"TAMPERED {problem}")
            print(f"{report.records} record(s) checked; head: record {report.head_sequence}, hash {report.head_hash}")
            if report.ok:
                print("the hash chain is intact")
                return EXIT_OK
            print(f"the hash chain is broken: {len(report.problems)} problem(s)")
            return EXIT_FAILED
        record = store.get(args.evaluation_id)
        if record is None:
            print(f"bagalau audit: no evaluation {args.evaluation_id!r} in the audit log", file=sys.stderr)
            return EXIT_USAGE
        if args.audit_command == "show":
            from .recording import record_json

            print(record_json(record))
            return EXIT_OK
        return _replay(record, args)
    except AuditError as e:
        print(f"bagalau audit: {e}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        store.close()


def _replay(record, args) -> int:
    from dsl.errors import CompileFailed
    from dsl.registry import load_registry

    from .replay import replay

    rules = args.rules or Path(dsl_cli.default_rules())
    try:
        registry = load_registry(rules)
    except CompileFailed as e:
        print(f"bagalau audit replay: the rules in {rules} do not compile:\n{e}", file=sys.stderr)
        return EXIT_RULES
    outcome = replay(record, registry)
    print(outcome.text())
    return EXIT_OK if outcome.same else EXIT_FAILED


# ------------------------------------------------------------------------------ entry point


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "serve":
        return cmd_serve(args)
    if args.command == "audit":
        from .log import configure

        configure("auto", "warning")  # to stderr: stdout carries the command's output
        return cmd_audit(args)
    return dsl_cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
