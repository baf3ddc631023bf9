"""Stand-ins for autointerp tests: hand-made features and a fake Claude behind httpx2.MockTransport.

The fake Claude is served through the real anthropic SDK (``http_client=httpx2.Client(
transport=httpx2.MockTransport(...))``), so every test exercises the SDK code path and none
touches the network.
"""

from __future__ import annotations

import json
import re
import threading
from typing import Callable

import httpx2
import numpy as np

from ssae_utils.autointerp.examples import Example, FeatureExamples
from ssae_utils.autointerp.prompts import INTERPRETER_SYSTEM, PREDICTOR_SYSTEM

KEYWORD = " quark"


def make_feature(model: str = "M", feature: int = 0, seed: int = 0) -> FeatureExamples:
    """A feature that fires exactly on the token " quark": 10 top windows, 5 firing and 5
    silent scoring windows (shuffled)."""
    rng = np.random.default_rng([seed, feature])
    filler = [" the", " field", " of", " a", " wave", " energy", " is"]

    def window(i: int, fires: bool, kind: str) -> Example:
        tokens = [str(rng.choice(filler)) for _ in range(6)]
        acts = [0.0] * 6
        if fires:
            pos = int(rng.integers(0, 6))
            tokens[pos], acts[pos] = KEYWORD, float(rng.uniform(1, 5))
        return Example(i, tokens, acts, kind, int(fires))  # type: ignore[arg-type]

    explain = [window(i, True, "top") for i in range(10)]
    score = [window(10 + i, True, "quantile") for i in range(5)] + [window(20 + i, False, "random") for i in range(5)]
    score = [score[i] for i in rng.permutation(10)]
    return FeatureExamples(model, feature, 15, explain, score, max(e.max_act for e in explain))


def message(text: str, model: str = "claude-test", input_tokens: int = 100, output_tokens: int = 20,
            thinking: bool = True, stop_reason: str = "end_turn") -> dict:
    content = ([{"type": "thinking", "thinking": "hmm", "signature": "sig"}] if thinking else []) + [{"type": "text", "text": text}]
    return {"id": "msg_test", "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}


def error(status: int, kind: str, headers: dict | None = None) -> httpx2.Response:
    return httpx2.Response(status, json={"type": "error", "error": {"type": kind, "message": kind}}, headers=headers or {})


def is_probe(body: dict) -> bool:
    """The one-token request the client sends before a run (ClaudeClient.probe)."""
    return "system" not in body and body.get("max_tokens") == 1


def smart_answer(body: dict) -> str:
    """What a competent Claude would answer: explains the keyword, predicts by the keyword."""
    if is_probe(body):
        return "ok"
    user = body["messages"][0]["content"]
    if body["system"] == INTERPRETER_SYSTEM:
        return "The marked tokens are all the same word.\nEXPLANATION: the word 'quark'"
    if body["system"] == PREDICTOR_SYSTEM:
        excerpts = re.findall(r"^Excerpt \d+: (.*)$", user, flags=re.M)
        return str([int(KEYWORD in e) for e in excerpts])
    raise AssertionError("unknown prompt")


class FakeClaude:
    """A MockTransport handler: records every request; ``script`` may override answers
    (a callable taking the request number and body, returning an httpx2.Response or None)."""

    def __init__(self, script: Callable[[int, dict], httpx2.Response | None] | None = None):
        self.requests: list[httpx2.Request] = []
        self.bodies: list[dict] = []
        self.script = script
        self._lock = threading.Lock()

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        with self._lock:
            n = len(self.requests)
            self.requests.append(request)
            self.bodies.append(body)
        if self.script is not None:
            scripted = self.script(n, body)
            if scripted is not None:
                return scripted
        return httpx2.Response(200, json=message(smart_answer(body), model=body["model"]))

    def http_client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self))
