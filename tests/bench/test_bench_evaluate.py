"""Compiled evaluation against hand-written decimal code, in-process (run with `make bench`).

Both sides get the same request inputs, as JSON numbers parsed exactly (dsl.decimals.loads), and
compute every value of org-development 2020 for one central body. Under `make test` these run once,
untimed, as correctness checks (--benchmark-disable).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import handwritten_od2020
from service_client import FULL_INPUTS
from dsl import decimals
from dsl.evaluate import EvalRequest
from dsl.registry import load_registry

ROOT = Path(__file__).resolve().parents[2]

INPUTS = FULL_INPUTS  # one central body, every input of org-development 2020 (shared with the service bench)


@pytest.fixture(scope="module")
def version():
    return load_registry(ROOT / "rules" / "org-development").get("org-development", "2020")


@pytest.fixture(scope="module")
def raw_inputs():
    return decimals.loads(json.dumps(INPUTS))


def test_engine_od2020_full(benchmark, version, raw_inputs):
    request = EvalRequest("bench", "central", raw_inputs)
    result = benchmark(version.evaluate, request)
    expected = handwritten_od2020.evaluate(raw_inputs)
    assert result.values == expected["values"] and result.grades == expected["grades"]


def test_handwritten_od2020_full(benchmark, raw_inputs):
    out = benchmark(handwritten_od2020.evaluate, raw_inputs)
    assert str(out["values"]["block"]) == "73.2"


def test_engine_od2020_supplied(benchmark, version):
    request = EvalRequest("bench", "central", decimals.loads('{"personnel": 87.72, "it": 97.98}'), only=["block"])
    result = benchmark(version.evaluate, request)
    assert str(result.values["block"]) == "92.9"


def test_handwritten_od2020_supplied(benchmark):
    import decimal
    from decimal import Decimal

    from dsl.decimals import CONTEXT

    half, tenth = Decimal("0.5"), Decimal("0.1")

    def block(inputs):
        with decimal.localcontext(CONTEXT):
            b = (half * inputs["personnel"] + half * inputs["it"]).quantize(tenth, decimal.ROUND_HALF_UP)
            return b, handwritten_od2020._grade(b)

    out = benchmark(block, decimals.loads('{"personnel": 87.72, "it": 97.98}'))
    assert str(out[0]) == "92.9"
