"""Helpers for tests: compile a rule snippet under a minimal header; where the repository is."""

from __future__ import annotations

import textwrap
from pathlib import Path

from dsl.compiler import compile_text

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"

HEADER = '''methodology demo version "1"
  title kk "Демо" en "Demo"
  basis "test order"
  effective from 2020-01-01
  status in_force
  subjects central, local
'''


def compile_snippet(body: str, header: str = HEADER, path: str = "demo.bgl", base_lookup=None):
    text = header + textwrap.dedent(body)
    return compile_text(text, path, base_lookup)


def codes(diags) -> list[str]:
    return [d.code for d in diags]


