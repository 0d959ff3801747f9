"""The gate every judging stage passes: a judge without a card, or whose card fails its null battery, is refused.

Why: a win rate from a judge that lets an empty answer beat the reference is not evidence, and the person
reading the leaderboard cannot tell. ``require_validated`` stops ``bench judge``/``eval``/``run`` with one
sentence unless the user explicitly passes ``--allow-unvalidated-judge``; the decision is then recorded with
the results (``validated``, ``reason``) so the leaderboard can mark every number from that judge.
``card_summary`` is the small, fixed-shape view of a card the leaderboard renders.
"""

from __future__ import annotations

from ..data import DataError
from ..metrics import NULL_OUTPUTS
from . import card as read_card


class UnvalidatedJudge(DataError):
    """The chosen judge has no card or its card fails; the message is one sentence."""

    def __init__(self, message: str):
        ValueError.__init__(self, message)
        self.path, self.line, self.field, self.problem = "", None, None, message
        self.message = message

    def __str__(self) -> str:
        return self.message


def _null(card: dict) -> dict:
    """Null battery of a card in one shape: GPT-4 cards (null_battery per reference) or the older human-label cards."""
    if "null_battery" in card:
        batteries = list(card["null_battery"].values())
        outputs: dict[str, float] = {}
        for b in batteries:
            for label, rate in b["outputs"].items():
                outputs[label] = min(rate, outputs.get(label, 1.0))
        worst = min(outputs.values()) if outputs else 0.0
        return {"passed": bool(batteries) and all(b["passed"] for b in batteries), "worst_loss_rate": worst, "outputs": outputs}
    old = card.get("null_model_check") or {}  # human-label cards: win rates of the three constant answers
    labels = dict(zip(NULL_OUTPUTS, ("empty", "i_dont_know", "refusal")))
    outputs = {labels.get(text, text): round(1 - rate, 4) for text, rate in (old.get("null_win_rates") or {}).items()}
    return {"passed": bool(old.get("passed")) and bool(outputs), "worst_loss_rate": min(outputs.values()) if outputs else 0.0,
            "outputs": outputs}


def card_summary(name: str) -> dict:
    """{"agreement", "near_equal_agreement", "longer_wins_agreement", "system_spearman", "null_battery"} of judge
    ``name``'s card (the headline set: AlpacaEval 1); figures a card does not have are None; {} without a card."""
    card = read_card(name)
    if not card:
        return {}
    null = _null(card)
    if "sets" in card and "headline" in card:
        s = card["sets"][card["headline"]]
        j, longer = s["judge"], s["longer_wins"]
        return {"agreement": dict(j["agreement"]), "near_equal_agreement": dict(j["near_equal_agreement"]),
                "longer_wins_agreement": {"value": longer["agreement"]["value"]},
                "system_spearman": dict(j["system_spearman"]), "null_battery": null}
    sets = (card.get("sets") or {}).values()
    total = sum(s["pairs"] for s in sets) or 1
    longer = sum(s["longer_wins_baseline_agreement"] * s["pairs"] for s in sets) / total if sets else None
    return {"agreement": {"value": card.get("agreement"), "ci95": card.get("agreement_ci95")},
            "near_equal_agreement": {"value": None, "ci95": None},
            "longer_wins_agreement": {"value": longer},
            "system_spearman": {"value": None, "ci95": None}, "null_battery": null}


def require_validated(name: str, allow_unvalidated: bool = False) -> dict:
    """{"name", "validated", "reason", "summary"}; raises ``UnvalidatedJudge`` when the judge fails and the user
    did not allow it."""
    summary = card_summary(name)
    reason = None
    if not summary:
        how = ("measure the served model with benchmarks/llm_judge_bench.py" if name == "llm"
               else f"run `bench judges measure {name}`")
        reason = f"judge '{name}' has no judge card ({how})"
    elif not summary["null_battery"]["passed"]:
        outputs = summary["null_battery"]["outputs"]
        label = min(outputs, key=outputs.get) if outputs else "(none measured)"
        reason = (f"judge '{name}' fails its null battery (the null output {label!r} loses on only "
                  f"{100 * outputs.get(label, 0.0):.0f}% of prompts, 98% required)")
    if reason and not allow_unvalidated:
        raise UnvalidatedJudge(f"Refusing to judge: {reason}; pass --allow-unvalidated-judge to use it anyway, and its "
                               "numbers will be marked unvalidated.")
    return {"name": name, "validated": reason is None, "reason": reason, "summary": summary}
