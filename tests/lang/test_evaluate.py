"""Evaluation: exact numbers, supplied values, subsets, input errors, explanations."""

from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings, strategies as st

from dsl import decimals
from dsl.decimals import CONTEXT
from dsl.errors import EvaluationFailed, InputError
from dsl.evaluate import EvalRequest
from dsl.registry import load_registry
from ruletext import RULES, compile_snippet
from dsl.registry import CompiledVersion


@pytest.fixture(scope="module")
def od2020():
    return load_registry(RULES / "org-development").get("org-development", "2020")


FULL = dict(leaders_left=1, staff_left=5, leaders_avg=10, staff_avg=90, due_advanced=10, trained_advanced=9,
            due_retraining=2, retrained=2, stability=4, exit_interview=5, gender_mix=3, staff_quality=4, rationing=8,
            satisfaction=7, management_practice=4, strategic_planning=1, e_kyzmet=2, competition_transparency=8,
            meritocracy_principles=7, career_growth=6, incentive_transparency=7, ethics=8, portal_filling=20,
            integration=18, systems=[{"actuality": "0.9"}, {"actuality": 1}], functions_total=91, automated_own=9)


def req(inputs, kind="central", **kw):
    return EvalRequest("subject-1", kind, inputs, **kw)


def test_supplied_directions_give_the_published_block(od2020):
    r = od2020.evaluate(req({"personnel": "87.72", "it": "97.98"}, only=["block"]))
    assert r.values == {"block": Decimal("92.9")}
    assert decimals.format_decimal(r.values["block"]) == "92.9"
    assert r.grades == {"block": "high"}
    assert r.supplied == ["it", "personnel"]


@pytest.mark.parametrize("personnel,it,expected", [("4.64", "63.86", "34.3"), ("17.68", "26.82", "22.3"),
                                                   ("57.88", "75.22", "66.6"), ("90.28", "41.82", "66.1")])
def test_half_up_rounding_is_exact_where_binary_floats_round_down(od2020, personnel, it, expected):
    assert round(0.5 * float(personnel) + 0.5 * float(it), 1) != float(expected)  # the float answer is wrong
    r = od2020.evaluate(req({"personnel": personnel, "it": it}, only=["block"]))
    assert decimals.format_decimal(r.values["block"]) == expected


def test_full_evaluation_values_are_decimals(od2020):
    r = od2020.evaluate(req(FULL))
    assert all(isinstance(v, Decimal) for v in r.values.values())
    assert r.values["net_turnover"] == 10
    assert r.values["training"] == Decimal("4.75")
    assert r.values["data_actuality"] == Decimal("23.75")
    assert set(r.grades) == {"it", "block"}


def test_supplied_values_alone_give_what_depends_on_them(od2020):
    r = od2020.evaluate(req({"personnel": "87.72", "it": "97.98"}))
    assert {k: str(v) for k, v in r.values.items()} == {"personnel": "87.72", "it": "97.98", "block": "92.9"}
    assert r.grades == {"it": "high", "block": "high"}


def test_only_computes_and_requires_what_is_asked(od2020):
    r = od2020.evaluate(req({"leaders_left": 0, "staff_left": 79, "leaders_avg": 0, "staff_avg": 1000}, only=["net_turnover"]))
    assert list(r.values) == ["net_turnover"]
    assert abs(r.values["net_turnover"] - Decimal("0.3333")) < Decimal("0.0001")


def test_supplied_value_skips_its_formula_and_its_inputs(od2020):
    inputs = {k: v for k, v in FULL.items() if k not in ("leaders_left", "staff_left", "leaders_avg", "staff_avg")}
    inputs["net_turnover"] = "7.5"
    r = od2020.evaluate(req(inputs))
    assert r.values["net_turnover"] == Decimal("7.5")
    assert "net_turnover" in r.supplied


def test_supplied_value_outside_its_range_is_refused(od2020):
    with pytest.raises(InputError) as info:
        od2020.evaluate(req({"personnel": "101", "it": "50"}, only=["block"]))
    assert [i.field for i in info.value.issues] == ["personnel"]
    assert "outside the range" in info.value.issues[0].message


def test_every_missing_and_invalid_input_is_listed_at_once(od2020):
    bad = dict(FULL)
    del bad["leaders_left"]
    bad["staff_left"] = "-3"
    bad["stability"] = "9"  # above stability_max = 5
    bad["systems"] = [{"actuality": "2"}, {"wrong": 1}]
    bad["nonsense"] = 1
    with pytest.raises(InputError) as info:
        od2020.evaluate(req(bad))
    fields = {i.field for i in info.value.issues}
    assert {"leaders_left", "staff_left", "stability", "systems[0].actuality", "systems[1].actuality",
            "systems[1].wrong", "nonsense"} <= fields
    text = str(info.value)
    assert "leaders_left: missing; expected a whole number >= 0" in text


def test_binary_float_input_is_refused(od2020):
    with pytest.raises(InputError) as info:
        od2020.evaluate(req({"personnel": 87.72, "it": "97.98"}, only=["block"]))
    assert "floating-point" in info.value.issues[0].message


def test_unknown_subject_kind(od2020):
    with pytest.raises(InputError) as info:
        od2020.evaluate(req({}, kind="servant"))
    assert info.value.issues[0].field == "subject.kind"


def test_bound_naming_another_input_is_checked(od2020):
    with pytest.raises(InputError) as info:
        od2020.evaluate(req({"due_advanced": 3, "trained_advanced": 5, "due_retraining": 0, "retrained": 0}, only=["training"]))
    assert info.value.issues[0].field == "trained_advanced"


def test_constraint_is_checked(od2020):
    with pytest.raises(InputError) as info:
        od2020.evaluate(req({"functions_total": 10, "automated_own": 8, "automated_service": 5}, only=["automation"],
                            language="en"))
    assert "cannot exceed" in str(info.value)
    assert {i.field for i in info.value.issues} == {"functions_total", "automated_own", "automated_service",
                                                    "automated_other_bodies", "automated_third_party"}


def test_explanation_names_branch_formula_values_and_source(od2020):
    r = od2020.evaluate(req({"leaders_left": 2, "staff_left": 5, "leaders_avg": 10, "staff_avg": 90},
                            only=["net_turnover"], explain=True, language="en"))
    (e,) = r.explanation
    assert e.label == "Net staff turnover"
    assert e.file.endswith("org-development/2020.bgl") and e.line > 0
    assert "t = (2 + 5) / (10 + 90) = 0.07" in e.substituted
    assert "else branch" in e.detail
    kk = od2020.evaluate(req({"leaders_left": 2, "staff_left": 5, "leaders_avg": 10, "staff_avg": 90},
                             only=["net_turnover"], explain=True, language="kk"))
    assert kk.explanation[0].label == "Персоналдың таза ауысымдылығы"


def test_explanation_of_rounding_and_supplied(od2020):
    r = od2020.evaluate(req({"personnel": "87.72", "it": "97.98"}, only=["block"], explain=True))
    by = {e.name: e for e in r.explanation}
    assert by["personnel"].supplied and "supplied" in by["personnel"].detail
    assert "92.850 rounded to 1 decimal place, half-up" in by["block"].detail


def test_evaluation_failure_names_the_definition():
    model, diags = compile_snippet("record r { v : points 0..10 }\ninput l : list of r\nindicator avg max 10 = mean(i in l : i.v)\n")
    cv = CompiledVersion(model)
    with pytest.raises(EvaluationFailed) as info:
        cv.evaluate(req({"l": []}))
    assert "avg" in str(info.value) and "empty" in str(info.value)


def test_band_table_and_variants():
    model, diags = compile_snippet("""
input share : percent
table control(s: percent) { [90, 100] -> 10  [80, 90) -> 8  [0, 80) -> 0 }
indicator r4 max 10 = control(share)
for local { indicator r4 max 10 = control(share) / 2 }
""")
    assert model is not None, [d.format() for d in diags]
    cv = CompiledVersion(model)
    assert cv.evaluate(req({"share": "89.99"})).values["r4"] == 8
    assert cv.evaluate(req({"share": "90"})).values["r4"] == 10
    assert cv.evaluate(req({"share": "90"}, kind="local")).values["r4"] == 5
    r = cv.evaluate(req({"share": "85"}, explain=True))
    assert "band [80, 90) -> 8" in r.explanation[0].detail


def test_result_json_shape(od2020):
    r = od2020.evaluate(req({"personnel": "87.72", "it": "97.98"}, only=["block"]))
    j = r.to_json()
    assert set(j) == {"methodology", "version", "content_hash", "subject", "values", "grades", "supplied"}
    assert j["values"] == {"block": "92.9"} and j["content_hash"].startswith("sha256:")


def test_plans_are_compiled_once(od2020):
    ev = od2020.evaluator
    a = ev.plan("central", None, frozenset(), False)
    b = ev.plan("central", None, frozenset(), False)
    assert a is b


@settings(max_examples=60, deadline=None)
@given(leaders=st.integers(0, 20), staff=st.integers(0, 200), avg=st.integers(1, 2000))
def test_traced_and_fast_evaluation_agree(od2020, leaders, staff, avg):
    inputs = dict(FULL, leaders_left=leaders, staff_left=staff, leaders_avg=0, staff_avg=avg)
    fast = od2020.evaluate(req(inputs))
    traced = od2020.evaluate(req(inputs, explain=True))
    assert fast.values == traced.values and fast.grades == traced.grades
    with localcontext(CONTEXT):
        t = Decimal(leaders + staff) / Decimal(avg)
        expected = Decimal(10) if t <= Decimal("0.06") else Decimal(0) if t >= Decimal("0.08") else 10 * (Decimal("0.08") - t) / Decimal("0.03")
    assert fast.values["net_turnover"] == expected


def test_enum_choices_compare_by_name():
    model, diags = compile_snippet("""
input group : enum(a_category, b_category)
record position { level : enum(junior, senior)  score : points 0..10 }
input staff : list of position
indicator x max 5 = when { group == b_category -> 5 else -> 1 }
value seniors = sum(p in staff where p.level == senior : p.score)
""")
    assert model is not None, [d.format() for d in diags]
    cv = CompiledVersion(model)
    r = cv.evaluate(req({"group": "b_category", "staff": [{"level": "senior", "score": 4}, {"level": "junior", "score": 3}]}))
    assert r.values == {"x": 5, "seniors": 4}
    _, diags = compile_snippet("input group : enum(a, b)\nindicator x = when { group == c -> 1 else -> 0 }\n")
    assert "E200" in [d.code for d in diags]


EXAMPLES = sorted((RULES.parent / "examples").glob("*.json"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_evaluation_never_changes_its_inputs(path, registry):
    """The service shares decoded lists and records between requests (service/convert.py): that is
    safe only because evaluation reads its inputs and never changes them, with or without an
    explanation, and when it refuses them."""
    import copy

    methodology, _, version = path.stem.partition("-2")
    cv = registry.get(methodology, "2" + version)
    example = decimals.loads(path.read_text(encoding="utf-8"))
    kind = example["subject"]["kind"]
    inputs = example["inputs"]
    for explain in (False, True):
        before = copy.deepcopy(inputs)
        cv.evaluate(EvalRequest("s", kind, inputs, explain=explain))
        assert inputs == before
    lists = {n: v for n, v in inputs.items() if isinstance(v, list)}
    broken = {**inputs, **{n: v + [{"nonsense": "x"}] for n, v in lists.items()}, "unknown": Decimal(1)}
    before = copy.deepcopy(broken)
    with pytest.raises(InputError):
        cv.evaluate(EvalRequest("s", kind, broken))
    assert broken == before


@pytest.fixture(scope="module")
def registry():
    return load_registry(RULES)
