"""org-development 2020 written by hand with `decimal`: the baseline the benchmark compares against.

What a careful developer would write without a rules engine: read each input as an exact Decimal,
reject missing ones, compute every value of the methodology, round the block half-up to one place,
grade it. It does no range checks and gives no explanation, so it is a generous baseline.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

from dsl.decimals import CONTEXT

D0, D1 = Decimal(0), Decimal(1)
HALF = Decimal("0.5")
T_FULL, T_ZERO, T_SPAN = Decimal("0.06"), Decimal("0.08"), Decimal("0.03")
TENTH = Decimal("0.1")


def _num(inputs: dict, name: str, default: Decimal | None = None) -> Decimal:
    v = inputs.get(name, default)
    if v is None:
        raise ValueError(f"{name} is missing")
    return v if isinstance(v, Decimal) else Decimal(str(v))


def _grade(x: Decimal) -> str:
    if x >= 90:
        return "high"
    if x >= 70:
        return "average"
    if x >= 50:
        return "low"
    return "ineffective"


def evaluate(inputs: dict) -> dict:
    with decimal.localcontext(CONTEXT):
        n = lambda name, default=None: _num(inputs, name, default)  # noqa: E731
        t = (n("leaders_left") + n("staff_left")) / (n("leaders_avg") + n("staff_avg"))
        net_turnover = Decimal(10) if t <= T_FULL else D0 if t >= T_ZERO else 10 * (T_ZERO - t) / T_SPAN
        hr_potential = net_turnover + n("stability") + n("exit_interview") + n("gender_mix") + n("staff_quality")
        due_a, due_r = n("due_advanced"), n("due_retraining")
        adv = D1 if due_a == 0 else n("trained_advanced") / due_a
        ret = D1 if due_r == 0 else n("retrained") / due_r
        training = 5 * (HALF * adv + HALF * ret)
        strategic = n("strategic_planning", D0)
        e_kyzmet = n("e_kyzmet", D0)
        labour = min(Decimal(30), n("rationing") + n("satisfaction") + n("management_practice") + training + strategic + e_kyzmet)
        meritocracy = (n("competition_transparency") + n("meritocracy_principles") + n("career_growth")
                       + n("incentive_transparency") + n("ethics"))
        late_training = 1 * n("training_violations", D0)
        personnel = hr_potential + labour + meritocracy - late_training
        systems = inputs["systems"]
        actuality = D0 if not systems else sum((_num(s, "actuality") for s in systems), D0) / len(systems) * 25
        automated = n("automated_own") + n("automated_service", D0) + n("automated_other_bodies", D0) + n("automated_third_party", D0)
        automation = automated / n("functions_total") * 25
        it = n("portal_filling") + n("integration") + actuality + automation - n("unused_is", D0)
        block = (HALF * personnel + HALF * it).quantize(TENTH, decimal.ROUND_HALF_UP)
        return {
            "values": {"net_turnover": net_turnover, "hr_potential": hr_potential, "training": training,
                       "strategic_planning_bonus": strategic, "e_kyzmet_bonus": e_kyzmet, "labour": labour,
                       "meritocracy": meritocracy, "late_training": late_training, "personnel": personnel,
                       "data_actuality": actuality, "automation": automation, "it": it, "block": block},
            "grades": {"it": _grade(it), "block": _grade(block)},
        }
