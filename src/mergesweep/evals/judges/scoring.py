"""Pairwise judged evaluation (AlpacaEval-style): each answer against a reference answer, decided by a judge.

How it fits: generation goes through lm-eval like every other task (same engine, same chat template), with
``process_results`` keeping only the answer length. A suite part with a ``judge:`` block is then handed to
``score``, which reads the answers lm-eval saved, asks the judge, and returns per-sample ``win`` (probability
the model's answer is better, 0-1) and per-task metrics computed by the ``alpaca-eval`` package's own code:
``get_winrate`` (raw win rate) and its GLM helpers for a length-controlled win rate.

Why the length control is a named variant: AlpacaEval's leaderboard LC (``length_controlled_v1``) needs two files
it downloads at run time (instruction difficulty, "gamed" baselines). Offline we fit alpaca-eval's own
``length_controlled_minimal`` GLM instead (length term + intercept, no instruction difficulty, no regularisation
to gamed baselines); it is recorded as ``lc_win_rate_offline_minimal`` and checked against the raw win rate.

Position bias: both orders (default) or one seeded random order per item. Only a GPT-4-turbo judge with
AlpacaEval's prompt and reference is leaderboard-comparable; every other judge gets a warning in the record.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ...errors import JudgeError
from ...paths import data_dir
from ..data import read_jsonl
from ..spec import PartSpec, part_spec
from .base import Judge, Triple
from .registry import get_judge
from .settings import identity
from .spec import JudgeSpec, judge_spec

log = logging.getLogger(__name__)
LC_VARIANT = (
    "lc_win_rate_offline_minimal: alpaca-eval's GLM 'length_controlled_minimal' (tanh(std_delta_len) + "
    "intercept) fitted offline on this point's judgements; NOT the leaderboard's length_controlled_v1 "
    "(no instruction difficulty, no regularisation to gamed baselines)"
)
ANNOTATIONS = "annotations_text_davinci_003_vs_gpt4_1106_preview_weighted_gpt4_turbo.slim.jsonl"
OUTPUTS = ("gpt4_turbo_1106_preview_model_outputs.json", "text_davinci_003_model_outputs.json")
_AGREEMENT: dict[str, dict[str, Any]] = {}


def check_part(part: PartSpec | Mapping[str, Any]) -> None:
    """Preflight: settings valid, prompt present, an HTTP judge reachable (bounded retries) before any engine."""
    s = judge_spec(part).validate()
    if s.kind == "openai":
        get_judge(s).probe()


def preferences(judge: Judge, s: JudgeSpec, items: Sequence[tuple[int, str, str, str]], seed: int) -> list[dict]:
    """Per item ``(index, instruction, reference, answer)``: P(answer better) with position bias controlled.

    ``both``: judged as (reference, answer) and (answer, reference), averaged. ``random``: one order per item,
    drawn from ``Random(f"{seed}:{index}")`` so a rerun makes the same draws.
    """
    jobs: list[tuple[int, bool, Triple]] = []
    for n, (idx, instr, ref, ans) in enumerate(items):
        orders = (False, True) if s.order == "both" else (random.Random(f"{seed}:{idx}").random() < 0.5,)
        for swapped in orders:
            jobs.append((n, swapped, (instr, ans, ref) if swapped else (instr, ref, ans)))
    probs = judge.p_second([job[2] for job in jobs])
    if len(probs) != len(jobs):
        raise JudgeError(f"judge returned {len(probs)} preferences for {len(jobs)} prompts")
    out: list[dict] = [{} for _ in items]
    for (n, swapped, _), p in zip(jobs, probs):
        out[n]["p_swapped" if swapped else "p_forward"] = p  # P(second shown answer is better)
    for o in out:
        wins = [o["p_forward"]] if "p_forward" in o else []
        wins += [1 - o["p_swapped"]] if "p_swapped" in o else []
        o["win"] = sum(wins) / len(wins)
    return out


def second_slot_bias(prefs: Sequence[Mapping[str, float]]) -> float | None:
    """Mean P(second slot wins) + P(second slot wins, swapped) - 1 over items judged both ways (0 = no bias)."""
    both = [p for p in prefs if "p_forward" in p and "p_swapped" in p]
    return sum(p["p_forward"] + p["p_swapped"] - 1 for p in both) / len(both) if both else None


def win_metrics(wins: Sequence[float], len_ref: Sequence[int], len_model: Sequence[int]) -> dict[str, Any]:
    """alpaca-eval's raw win rate (0-100) + the offline length-controlled variant, and whether they disagree wildly."""
    from alpaca_eval.metrics.glm_winrate import get_is_extreme_changes
    from alpaca_eval.metrics.winrate import get_winrate

    raw = {k: float(v) for k, v in get_winrate([{"preference": 1 + w} for w in wins]).items()}
    out: dict[str, Any] = {
        "win": sum(wins) / len(wins),
        "win_rate": raw["win_rate"],
        "discrete_win_rate": raw["discrete_win_rate"],
        "win_rate_se": raw["standard_error"],
        "n_total": raw["n_total"],
    }
    lc, why = lc_offline_minimal(wins, len_ref, len_model)
    if lc is None:
        out["lc_offline_error"] = why
    else:
        out["lc_win_rate_offline_minimal"] = lc
        out["lc_extreme_change"] = bool(get_is_extreme_changes(raw["win_rate"], lc))
    return out


def lc_offline_minimal(
    wins: Sequence[float], len_ref: Sequence[int], len_model: Sequence[int]
) -> tuple[float | None, str]:
    """Win rate (0-100) predicted at equal length by alpaca-eval's ``length_controlled_minimal`` GLM.

    Follows ``glm_winrate._get_featurized_data`` (output_1 = reference, std_delta_len = (len_1 - len_2) / std)
    without the downloaded instruction difficulty and gamed-baseline rows, then alpaca-eval's own design-matrix
    and ``fit_LogisticRegressionCV`` (5-fold). Returns (None, reason) when it cannot be fitted.
    """
    import warnings

    import pandas as pd
    from alpaca_eval.metrics import glm_winrate as glm

    delta = pd.Series([a - b for a, b in zip(len_ref, len_model)], dtype=float)
    distinct = len({round(w, 6) for w in wins})
    if len(delta) < 10 or delta.std() == 0 or distinct < 2:
        return None, (f"not fitted: {len(delta)} items (need 10), length-difference std {float(delta.std() or 0):.1f}, "
                      f"{distinct} distinct judgements (need 2)")  # fmt: skip
    df = pd.DataFrame({"preference": list(wins), "std_delta_len": delta / delta.std(), "not_gamed_baseline": True})
    test = df[["not_gamed_baseline"]].copy()
    test["std_delta_len"] = 0.0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # sklearn 1.8+ deprecations inside alpaca-eval's fit
            formula = glm.GLM_INFO["length_controlled_minimal"]["formula"]
            xy, x_test = glm.make_dmatrix_for_model(df, test, formula=formula)
            model = glm.fit_LogisticRegressionCV(xy, "preference", is_ytrue_proba=True, n_splits=5)
    except Exception as e:  # a degenerate fit must not lose the point's raw win rate
        return None, f"not fitted: {type(e).__name__}: {e}"
    return float(model.predict_proba(x_test)[:, 1].mean() * 100), ""


def agreement(s: JudgeSpec, limit: int, seed: int) -> dict[str, Any]:
    """The judge vs GPT-4-turbo on the shipped text_davinci_003 vs gpt4_1106_preview annotations (first ``limit``).

    Same prompt, identifiers and order policy as the suite. Reports the share of items where both judges prefer
    the same answer, the mean absolute difference of P(davinci-003 better), and both win rates of davinci-003.
    Cached per judge and limit: the judge does not change between sweep points.
    """
    key = json.dumps([identity(s), limit, seed], sort_keys=True)
    if key in _AGREEMENT:
        return _AGREEMENT[key]
    folder = data_dir() / "alpaca_eval"
    rows = read_jsonl(folder / ANNOTATIONS, ("index", "instruction", "preference"))[: limit or None]
    gpt4, davinci = (json.loads((folder / f).read_text(encoding="utf-8")) for f in OUTPUTS)
    items = [(r["index"], r["instruction"], gpt4[r["index"]]["output"], davinci[r["index"]]["output"]) for r in rows]
    judge_p = [p["win"] for p in preferences(get_judge(s), s, items, seed)]
    ref_p = [0.5 if float(r["preference"]) == 0 else float(r["preference"]) - 1 for r in rows]  # 0 = draw upstream

    def side(p: float) -> int:
        return (p > 0.5) - (p < 0.5)

    _AGREEMENT[key] = {
        "n": len(rows), "annotations": ANNOTATIONS, "seed": seed,
        "agreement": sum(side(a) == side(b) for a, b in zip(judge_p, ref_p)) / len(rows),
        "mean_abs_diff": sum(abs(a - b) for a, b in zip(judge_p, ref_p)) / len(rows),
        "judge_win_rate_davinci003": 100 * sum(judge_p) / len(rows),
        "gpt4_turbo_win_rate_davinci003": 100 * sum(ref_p) / len(rows),
    }  # fmt: skip
    return _AGREEMENT[key]


def _answer(sample: Mapping[str, Any]) -> str:
    resp = sample.get("filtered_resps") or sample["resps"][0]
    return resp[0] if isinstance(resp, list) else str(resp)


@dataclass
class JudgedPart:
    """What judging a part adds to lm-eval's output (which it leaves untouched): per sample (by task and doc id)
    the ``win`` and the judge's details, per task the win-rate metrics, and ``info``, what the record keeps under
    ``metrics.<part>.judge`` (judge identity, warnings, the LC variant's name, per-task notes and, with
    ``agreement_limit``, agreement with GPT-4-turbo)."""

    rows: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def score(samples: Mapping[str, list[dict[str, Any]]], part: PartSpec | Mapping[str, Any], seed: int) -> JudgedPart:
    """Judge every answer lm-eval generated for this part (``samples``: lm-eval's per-task sample rows)."""
    part = part_spec(part)
    s = judge_spec(part).validate()
    judge = get_judge(s)
    info: dict[str, Any] = {"judge": identity(s), "seed": seed, "lc_variant": LC_VARIANT, "tasks": {}}
    if not info["judge"]["leaderboard_comparable"]:
        info["warning"] = (f"judge {s.model!r} (prompt {s.prompt!r}, reference {s.reference!r}) is not "
                           "AlpacaEval's leaderboard setup (GPT-4-turbo judge, alpaca_eval_clf_gpt4_turbo prompt, "
                           "gpt4_1106_preview reference): win rates are not leaderboard-comparable")  # fmt: skip
        log.warning(info["warning"])
    ref_key = f"ref_{s.reference}"
    out = JudgedPart(info=info)
    for task in part.tasks:
        rows = sorted(samples[task], key=lambda r: r["doc_id"])
        if rows and ref_key not in rows[0]["doc"]:
            known = sorted(k[4:] for k in rows[0]["doc"] if k.startswith("ref_"))
            raise JudgeError(f"judge.reference {s.reference!r}: task {task!r} has reference sets {known}")
        items = [(r["doc_id"], r["doc"]["instruction"], r["doc"][ref_key], _answer(r)) for r in rows]
        prefs = preferences(judge, s, items, seed)
        out.rows[task] = {
            r["doc_id"]: {
                "win": p["win"],
                "judge": {**{k: v for k, v in p.items() if k != "win"}, "reference": s.reference},
            }
            for r, p in zip(rows, prefs)
        }
        metrics = win_metrics([p["win"] for p in prefs], [len(i[2]) for i in items], [len(i[3]) for i in items])
        bias = second_slot_bias(prefs)
        if bias is not None:
            metrics["second_slot_bias"] = bias
        if metrics.get("lc_extreme_change"):
            log.warning("%s: offline LC win rate %.1f is far from the raw %.1f", task,
                        metrics["lc_win_rate_offline_minimal"], metrics["win_rate"])  # fmt: skip
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        out.metrics[task] = numbers
        info["tasks"][task] = {k: v for k, v in metrics.items() if k not in numbers}
    if s.agreement_limit:
        info["agreement_with_gpt4_turbo"] = agreement(s, int(s.agreement_limit), seed)
    return out
