"""The `bagalau` console script: the library's commands (dsl.cli) plus the service's (serve, audit)."""

from __future__ import annotations

import sys

from dsl import cli as dsl_cli


def main(argv: list[str] | None = None) -> int:
    parser = dsl_cli.build_parser()
    args = parser.parse_args(argv)
    return dsl_cli.run(args)


if __name__ == "__main__":
    sys.exit(main())
