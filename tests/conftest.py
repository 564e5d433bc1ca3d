"""Fixtures shared by every test folder. Plain helpers live in ruletext.py (import it by name)."""

from __future__ import annotations

import pytest

from ruletext import HEADER, compile_snippet


@pytest.fixture
def compile_ok():
    def run(body: str, header: str = HEADER):
        model, diags = compile_snippet(body, header)
        errors = [d.format() for d in diags if d.severity == "error"]
        assert model is not None, "\n".join(errors)
        return model

    return run
