"""Pairwise judged evaluation (AlpacaEval-style): each answer against a reference answer, decided by a judge model.

How it fits: generation goes through lm-eval like every other task (same engine, same chat template), with
``process_results`` keeping only the answer length. A suite part with a ``judge:`` block is then handed to
``score``, which reads the answers lm-eval saved, asks the judge, writes a per-sample ``win`` (probability the
model's answer is better, 0-1) into the samples, and adds per-task metrics computed by the ``alpaca-eval``
package's own code: ``get_winrate`` (raw win rate) and its GLM helpers for a length-controlled win rate.

Why the length control is a named variant: AlpacaEval's leaderboard LC (``length_controlled_v1``) needs two files
it downloads at run time (instruction difficulty, "gamed" baselines). Offline we fit alpaca-eval's own
``length_controlled_minimal`` GLM instead (length term + intercept, no instruction difficulty, no regularisation
to gamed baselines); it is recorded as ``lc_win_rate_offline_minimal`` and checked against the raw win rate.

Judges: ``openai`` (an OpenAI-compatible endpoint, e.g. ``vllm serve``, loopback by default, API key read from
an env var whose *name* is configured), ``hf`` or ``vllm`` (a judge model in this process, transformers or
batched vLLM) or ``reward`` (a reward model, Bradley-Terry over its scores: the cheap option). The preference is
AlpacaEval 2's: the judge's probabilities of the two answer identifiers after the classifier prompt. Position
bias: both orders (default) or one seeded random order per item. Only a GPT-4-turbo judge with AlpacaEval's
prompt and reference is leaderboard-comparable; every other judge gets a warning in the record.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..paths import data_dir
from .data import read_jsonl
from .suite import SuiteError

log = logging.getLogger(__name__)
KINDS, ORDERS = ("openai", "hf", "vllm", "reward"), ("both", "random")
LEADERBOARD = {"model": "gpt-4-1106-preview", "prompt": "alpaca_eval_clf_gpt4_turbo", "reference": "gpt4_1106_preview"}
LC_VARIANT = ("lc_win_rate_offline_minimal: alpaca-eval's GLM 'length_controlled_minimal' (tanh(std_delta_len) + "
              "intercept) fitted offline on this point's judgements; NOT the leaderboard's length_controlled_v1 "
              "(no instruction difficulty, no regularisation to gamed baselines)")
DEFAULTS: dict[str, Any] = {
    "kind": "openai", "model": None, "base_url": "http://127.0.0.1:8000/v1", "api_key_env": None,
    "allow_remote": False, "prompt": "alpaca_eval_clf_gpt4_turbo", "tokens": ["m", "M"], "order": "both",
    "reference": "gpt4_1106_preview", "timeout_s": 60, "retries": 3, "concurrency": 4, "agreement_limit": 0,
    "dtype": "float32", "device": None}
_PLACEHOLDERS = ("instruction", "output_1", "output_2")
ANNOTATIONS = "annotations_text_davinci_003_vs_gpt4_1106_preview_weighted_gpt4_turbo.slim.jsonl"
OUTPUTS = ("gpt4_turbo_1106_preview_model_outputs.json", "text_davinci_003_model_outputs.json")


class JudgeError(SuiteError):
    """The judge is misconfigured or unreachable; no record is written."""


def settings(part: Mapping[str, Any]) -> dict[str, Any]:
    """The part's ``judge`` block over the defaults, checked (JudgeError names the bad field)."""
    s = {**DEFAULTS, **dict(part.get("judge") or {})}
    unknown = sorted(set(s) - set(DEFAULTS))
    if unknown:
        raise JudgeError(f"judge: unknown setting(s) {unknown}; known: {sorted(DEFAULTS)}")
    if s["kind"] not in KINDS or s["order"] not in ORDERS:
        raise JudgeError(f"judge: kind must be one of {KINDS} and order one of {ORDERS}, "
                         f"got {s['kind']!r}/{s['order']!r}")
    if not s["model"]:
        raise JudgeError("judge: `model` is required (served model name for openai, a local path for hf)")
    if len(s["tokens"]) != 2 or s["tokens"][0] == s["tokens"][1]:
        raise JudgeError(f"judge: `tokens` must be two different identifiers, got {s['tokens']!r}")
    if s["kind"] == "openai":
        host = urllib.parse.urlparse(s["base_url"]).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1") and not s["allow_remote"]:
            raise JudgeError(f"judge: base_url {s['base_url']!r} is not a loopback address; set "
                             "judge.allow_remote=true to send answers to another machine")
        if s["api_key_env"] and not os.environ.get(s["api_key_env"]):
            raise JudgeError(f"judge: api_key_env names ${s['api_key_env']}, which is not set")
    template(s["prompt"])
    return s


def template(name: str) -> str:
    """Judge prompt ``data/alpaca_eval/judge_prompt_<name>.txt`` (or a file path) with the three placeholders."""
    path = Path(name) if name.endswith(".txt") else data_dir() / "alpaca_eval" / f"judge_prompt_{name}.txt"
    if not path.is_file():
        raise JudgeError(f"judge: prompt {name!r} not found (looked for {path})")
    text = path.read_text(encoding="utf-8")
    missing = [p for p in _PLACEHOLDERS if "{" + p + "}" not in text]
    if missing:
        raise JudgeError(f"judge: prompt {path} lacks placeholder(s) {missing}")
    return text


def messages(tmpl: str, instruction: str, output_1: str, output_2: str) -> list[dict[str, str]]:
    """Fill the template in one pass (answers may contain braces) and split its ChatML into chat messages."""
    from alpaca_eval.utils import prompt_to_chatml

    values = {"instruction": instruction, "output_1": output_1, "output_2": output_2}
    return prompt_to_chatml(re.sub(r"\{(instruction|output_1|output_2)\}", lambda m: values[m.group(1)], tmpl))


def _p_second(lp_first: float, lp_second: float) -> float:
    """P(second identifier) among the two (AlpacaEval's logprob parser); 0.5 when the judge gave neither."""
    if lp_first == -math.inf and lp_second == -math.inf:
        return 0.5
    top = max(lp_first, lp_second)
    a, b = math.exp(lp_first - top), math.exp(lp_second - top)
    return b / (a + b)


class OpenAIJudge:
    """Chat completions on an OpenAI-compatible endpoint; one token, top logprobs of the two identifiers."""

    def __init__(self, s: dict[str, Any]) -> None:
        self.s, self.url = s, s["base_url"].rstrip("/")
        self.key = os.environ.get(s["api_key_env"]) if s["api_key_env"] else None

    def _request(self, path: str, body: dict | None = None) -> dict:
        """JSON from the endpoint, with bounded retries on network errors, 5xx/429 and unparsable replies."""
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {self.key}"} if self.key else {})}
        last = ""
        for attempt in range(1, int(self.s["retries"]) + 1):
            req = urllib.request.Request(self.url + path, data=None if body is None else json.dumps(body).encode(),
                                         headers=headers, method="GET" if body is None else "POST")
            try:
                with urllib.request.urlopen(req, timeout=float(self.s["timeout_s"])) as r:
                    out = json.loads(r.read().decode("utf-8"))
                if isinstance(out, dict):
                    return out
                last = f"reply is not a JSON object: {str(out)[:80]!r}"
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:200].decode('utf-8', 'replace')}"
                if e.code < 500 and e.code != 429:
                    raise JudgeError(f"judge endpoint {self.url}{path} refused the request: {last}") from None
            except (urllib.error.URLError, OSError, ValueError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            if attempt < int(self.s["retries"]):
                time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
        raise JudgeError(f"judge endpoint {self.url}{path} failed {self.s['retries']} time(s); last error: {last}")

    def probe(self) -> None:
        self._request("/models")

    def p_second(self, msgs: list[dict[str, str]]) -> float:
        body = {"model": self.s["model"], "messages": msgs, "max_tokens": 1, "temperature": 0,
                "logprobs": True, "top_logprobs": 5}
        out = self._request("/chat/completions", body)
        try:
            choice = out["choices"][0]
            content = (choice.get("logprobs") or {}).get("content") or []
            tops = {t["token"].strip(): t["logprob"] for t in (content[0].get("top_logprobs") or [])} if content else {}
            text = ((choice.get("message") or {}).get("content") or "").strip()
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise JudgeError(f"judge endpoint {self.url}/chat/completions: unexpected reply ({e!r}): {str(out)[:200]}")
        first, second = self.s["tokens"]
        if first in tops or second in tops:
            return _p_second(tops.get(first, -math.inf), tops.get(second, -math.inf))
        return {first: 0.0, second: 1.0}.get(text, 0.5)  # no logprobs: the answer itself, else a tie


_JUDGES: dict[str, Any] = {}
_AGREEMENT: dict[str, dict] = {}


def identity(s: Mapping[str, Any]) -> dict[str, Any]:
    """What the record says about the judge (never the API key, only the variable's name)."""
    where = ("base_url", "api_key_env") if s["kind"] == "openai" else ("dtype",)
    keys = ("kind", "model", "prompt", "tokens", "order", "reference") + where
    out = {k: s[k] for k in keys}
    out["prompt_sha256"] = hashlib.sha256(template(s["prompt"]).encode()).hexdigest()[:16]
    out["leaderboard_comparable"] = all(s[k] == v for k, v in LEADERBOARD.items())
    return out


def get_judge(s: dict[str, Any]):
    """One judge per configuration per process (an in-process judge model is loaded once per sweep)."""
    key = json.dumps({k: s[k] for k in ("kind", "model", "base_url", "dtype", "device")}, sort_keys=True)
    if key not in _JUDGES:
        if s["kind"] == "openai":
            _JUDGES[key] = OpenAIJudge(s)
        else:  # a judge model in this process
            from .local_judges import HFJudge, VLLMJudge
            from .reward_judge import RewardJudge

            _JUDGES[key] = {"hf": HFJudge, "vllm": VLLMJudge, "reward": RewardJudge}[s["kind"]](s)
    return _JUDGES[key]


def check_part(part: Mapping[str, Any]) -> None:
    """Preflight: settings valid, prompt present, an HTTP judge reachable (bounded retries) before any engine."""
    s = settings(part)
    if s["kind"] == "openai":
        get_judge(s).probe()


def preferences(judge: Any, s: Mapping[str, Any], items: Sequence[tuple[int, str, str, str]], seed: int) -> list[dict]:
    """Per item ``(index, instruction, reference, answer)``: P(answer better) with position bias controlled.

    ``both``: judged as (reference, answer) and (answer, reference), averaged. ``random``: one order per item,
    drawn from ``Random(f"{seed}:{index}")`` so a rerun makes the same draws.
    """
    tmpl = template(s["prompt"])
    jobs: list[tuple[int, bool, tuple[str, str, str]]] = []
    for n, (idx, instr, ref, ans) in enumerate(items):
        orders = (False, True) if s["order"] == "both" else (random.Random(f"{seed}:{idx}").random() < 0.5,)
        for swapped in orders:
            jobs.append((n, swapped, (instr, ans, ref) if swapped else (instr, ref, ans)))
    workers = int(s["concurrency"]) if s["kind"] == "openai" else 1
    dead = threading.Event()

    def call(pair: tuple[str, str, str]) -> float:
        if dead.is_set():
            raise JudgeError("judge gave up on another item")
        try:
            if hasattr(judge, "p_second_pair"):  # reward models score answers, not a judge prompt
                return judge.p_second_pair(*pair)
            return judge.p_second(messages(tmpl, *pair))
        except Exception:
            dead.set()
            raise

    if hasattr(judge, "p_second_many"):  # in-process vLLM: every prompt of the point in one batch
        probs = judge.p_second_many([messages(tmpl, *job[2]) for job in jobs])
    else:
        pool = ThreadPoolExecutor(max_workers=max(1, workers))
        futures = [pool.submit(call, job[2]) for job in jobs]
        try:
            for f in as_completed(futures):
                f.result()  # the first judge that gave up ends the whole part: queued calls are dropped
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        probs = [f.result() for f in futures]
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
    out = {"win": sum(wins) / len(wins), "win_rate": raw["win_rate"], "discrete_win_rate": raw["discrete_win_rate"],
           "win_rate_se": raw["standard_error"], "n_total": raw["n_total"]}
    lc, why = lc_offline_minimal(wins, len_ref, len_model)
    if lc is None:
        out["lc_offline_error"] = why
    else:
        out["lc_win_rate_offline_minimal"] = lc
        out["lc_extreme_change"] = bool(get_is_extreme_changes(raw["win_rate"], lc))
    return out


def lc_offline_minimal(wins: Sequence[float], len_ref: Sequence[int],
                       len_model: Sequence[int]) -> tuple[float | None, str]:
    """Win rate (0-100) predicted at equal length by alpaca-eval's ``length_controlled_minimal`` GLM.

    Follows ``glm_winrate._get_featurized_data`` (output_1 = reference, std_delta_len = (len_1 - len_2) / std)
    without the downloaded instruction difficulty and gamed-baseline rows, then alpaca-eval's own design-matrix
    and ``fit_LogisticRegressionCV`` (5-fold). Returns (None, reason) when it cannot be fitted.
    """
    import warnings

    import pandas as pd
    from alpaca_eval.metrics import glm_winrate as glm

    delta = pd.Series([a - b for a, b in zip(len_ref, len_model)], dtype=float)
    if len(delta) < 10 or delta.std() == 0 or len({round(w, 6) for w in wins}) < 2:
        return None, (f"not fitted: {len(delta)} items (need 10), length-difference std {float(delta.std() or 0):.1f}, "
                      f"{len({round(w, 6) for w in wins})} distinct judgements (need 2)")
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


def agreement(s: dict[str, Any], limit: int, seed: int) -> dict[str, Any]:
    """The judge vs GPT-4-turbo on the shipped text_davinci_003 vs gpt4_1106_preview annotations (first ``limit``).

    Same prompt, identifiers and order policy as the suite. Reports the share of items where both judges prefer
    the same answer, the mean absolute difference of P(davinci-003 better), and both win rates of davinci-003.
    Cached per judge and limit: the judge does not change between sweep points.
    """
    key = json.dumps([identity(s), limit, seed], sort_keys=True)
    if key in _AGREEMENT:
        return _AGREEMENT[key]
    folder = data_dir() / "alpaca_eval"
    rows = read_jsonl(folder / ANNOTATIONS, ("index", "instruction", "preference"))[:limit or None]
    gpt4, davinci = (json.loads((folder / f).read_text(encoding="utf-8")) for f in OUTPUTS)
    items = [(r["index"], r["instruction"], gpt4[r["index"]]["output"], davinci[r["index"]]["output"]) for r in rows]
    judge_p = [p["win"] for p in preferences(get_judge(s), s, items, seed)]
    ref_p = [0.5 if float(r["preference"]) == 0 else float(r["preference"]) - 1 for r in rows]  # 0 = draw upstream
    side = lambda p: (p > 0.5) - (p < 0.5)  # noqa: E731
    _AGREEMENT[key] = {
        "n": len(rows), "annotations": ANNOTATIONS, "seed": seed,
        "agreement": sum(side(a) == side(b) for a, b in zip(judge_p, ref_p)) / len(rows),
        "mean_abs_diff": sum(abs(a - b) for a, b in zip(judge_p, ref_p)) / len(rows),
        "judge_win_rate_davinci003": 100 * sum(judge_p) / len(rows),
        "gpt4_turbo_win_rate_davinci003": 100 * sum(ref_p) / len(rows)}
    return _AGREEMENT[key]


def _answer(sample: Mapping[str, Any]) -> str:
    resp = sample.get("filtered_resps") or sample["resps"][0]
    return resp[0] if isinstance(resp, list) else str(resp)


def score(res: dict[str, Any], part: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """Judge every answer lm-eval generated for this part; adds ``win`` per sample and per-task metrics in place.

    Returns what the record keeps under ``metrics.<part>.judge``: judge identity, warnings, the LC variant's
    name, per-task notes and (if ``agreement_limit``) agreement with GPT-4-turbo.
    """
    s = settings(part)
    judge = get_judge(s)
    info: dict[str, Any] = {"judge": identity(s), "seed": seed, "lc_variant": LC_VARIANT, "tasks": {}}
    if not info["judge"]["leaderboard_comparable"]:
        info["warning"] = (f"judge {s['model']!r} (prompt {s['prompt']!r}, reference {s['reference']!r}) is not "
                           "AlpacaEval's leaderboard setup (GPT-4-turbo judge, alpaca_eval_clf_gpt4_turbo prompt, "
                           "gpt4_1106_preview reference): win rates are not leaderboard-comparable")
        log.warning(info["warning"])
    ref_key = f"ref_{s['reference']}"
    for task in part["tasks"]:
        rows = sorted(res["samples"][task], key=lambda r: r["doc_id"])
        if rows and ref_key not in rows[0]["doc"]:
            known = sorted(k[4:] for k in rows[0]["doc"] if k.startswith("ref_"))
            raise JudgeError(f"judge.reference {s['reference']!r}: task {task!r} has reference sets {known}")
        items = [(r["doc_id"], r["doc"]["instruction"], r["doc"][ref_key], _answer(r)) for r in rows]
        prefs = preferences(judge, s, items, seed)
        for r, p in zip(rows, prefs):
            r["win"] = p["win"]
            r["judge"] = {**{k: v for k, v in p.items() if k != "win"}, "reference": s["reference"]}
        metrics = win_metrics([p["win"] for p in prefs], [len(i[2]) for i in items], [len(i[3]) for i in items])
        if second_slot_bias(prefs) is not None:
            metrics["second_slot_bias"] = second_slot_bias(prefs)
        if metrics.get("lc_extreme_change"):
            log.warning("%s: offline LC win rate %.1f is far from the raw %.1f", task,
                        metrics["lc_win_rate_offline_minimal"], metrics["win_rate"])
        numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        res["results"][task].update({f"{k},none": v for k, v in numbers.items()})
        info["tasks"][task] = {k: v for k, v in metrics.items() if k not in numbers}
    if s["agreement_limit"]:
        info["agreement_with_gpt4_turbo"] = agreement(s, int(s["agreement_limit"]), seed)
    return info
