"""``judge.kind: openai``: chat completions on an OpenAI-compatible endpoint (``vllm serve``, loopback by default).

One token per judge prompt with the top logprobs of the two answer identifiers (AlpacaEval 2's preference);
an endpoint that returns no logprobs is read from the answer text instead (identifier -> 0 or 1, else a tie).
Requests run ``concurrency`` at a time with bounded retries; the first prompt the endpoint gives up on ends
the whole part, and prompts still queued are dropped instead of each failing ``retries`` times.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from ...errors import JudgeError
from .base import Messages, PromptJudge, p_second_from_logprobs
from .spec import JudgeSpec


class OpenAIJudge(PromptJudge):
    """An HTTP judge; the API key is read from the environment variable the config names, never stored."""

    def __init__(self, s: JudgeSpec) -> None:
        super().__init__(s)
        self.url = str(self.s.base_url).rstrip("/")
        self.key = os.environ.get(self.s.api_key_env) if self.s.api_key_env else None

    def _request(self, path: str, body: dict | None = None) -> dict:
        """JSON from the endpoint, with bounded retries on network errors, 5xx/429 and unparsable replies."""
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {self.key}"} if self.key else {})}
        retries, last = int(self.s.retries), ""
        for attempt in range(1, retries + 1):
            data = None if body is None else json.dumps(body).encode()
            req = urllib.request.Request(
                self.url + path, data=data, headers=headers, method="GET" if body is None else "POST"
            )
            try:
                with urllib.request.urlopen(req, timeout=float(self.s.timeout_s)) as r:
                    out = json.loads(r.read().decode("utf-8"))
                if isinstance(out, dict):
                    return out
                last = f"reply is not a JSON object: {str(out)[:80]!r}"
            except urllib.error.HTTPError as e:
                last = f"HTTP {e.code}: {e.read()[:200].decode('utf-8', 'replace')}"
                if e.code < 500 and e.code != 429:  # the request itself is wrong: retrying cannot help
                    raise JudgeError(f"judge endpoint {self.url}{path} refused the request: {last}") from None
            except (urllib.error.URLError, OSError, ValueError) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            if attempt < retries:
                time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
        raise JudgeError(f"judge endpoint {self.url}{path} failed {retries} time(s); last error: {last}")

    def probe(self) -> None:
        self._request("/models")

    def p_second_one(self, msgs: Messages) -> float:
        """P(second identifier) for one judge prompt."""
        body = {"model": self.s.model, "messages": msgs, "max_tokens": 1, "temperature": 0,
                "logprobs": True, "top_logprobs": 5}  # fmt: skip
        out = self._request("/chat/completions", body)
        try:
            choice = out["choices"][0]
            content = (choice.get("logprobs") or {}).get("content") or []
            tops = {t["token"].strip(): t["logprob"] for t in (content[0].get("top_logprobs") or [])} if content else {}
            text = ((choice.get("message") or {}).get("content") or "").strip()
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise JudgeError(
                f"judge endpoint {self.url}/chat/completions: unexpected reply ({e!r}): {str(out)[:200]}"
            ) from None
        first, second = self.s.tokens
        if first in tops or second in tops:
            return p_second_from_logprobs(tops.get(first, -math.inf), tops.get(second, -math.inf))
        return {first: 0.0, second: 1.0}.get(text, 0.5)  # no logprobs: the answer itself, else a tie

    def p_second_prompts(self, prompts: Sequence[Messages]) -> list[float]:
        dead = threading.Event()

        def call(msgs: Messages) -> float:
            if dead.is_set():
                raise JudgeError("judge gave up on another item")
            try:
                return self.p_second_one(msgs)
            except Exception:
                dead.set()
                raise

        pool = ThreadPoolExecutor(max_workers=max(1, int(self.s.concurrency)))
        futures = [pool.submit(call, m) for m in prompts]
        try:
            for f in as_completed(futures):
                f.result()  # the first prompt the judge gave up on ends the whole part: queued calls are dropped
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return [f.result() for f in futures]
