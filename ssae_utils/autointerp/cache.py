"""On-disk cache of Claude request/response pairs: a rerun costs nothing and survives interruption.

One JSON file per entry, ``<root>/<key[:2]>/<key>.json``, where the key is a hash of
everything that determines the answer (model, system prompt, user prompt, max_tokens,
effort). Each file is written atomically (temporary file + rename), so a killed run leaves
either a complete entry or none. An entry that does not parse (truncated, garbled bytes),
whose key or checksum does not match its content, or whose response breaks the schema (text a
string, token counts non-negative ints, stop reason a string or null: the checksum alone would
pass an entry written with a wrong type) is reported, ignored, and replaced by the next answer. Entries hold prompts
and answers only: never the API key or request headers.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ssae_utils.autointerp.client import LLMRequest, LLMResponse
from ssae_utils.io import stable_hash, write_json_atomic
from ssae_utils.paths import cache_dir

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def request_key(request: LLMRequest) -> str:
    return stable_hash({"format": CACHE_FORMAT, **request.cache_fields()}, length=32)


class ResponseCache:
    """Content-addressed store of answers to requests."""

    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else cache_dir("autointerp", "responses")
        self.root.mkdir(parents=True, exist_ok=True)
        self.corrupt = 0  # damaged entries met (and ignored)

    def path(self, request: LLMRequest) -> Path:
        key = request_key(request)
        return self.root / key[:2] / f"{key}.json"

    def get(self, request: LLMRequest) -> LLMResponse | None:
        path = self.path(request)
        if not path.exists():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            ok = (entry.get("key") == path.stem and entry.get("request") == request.cache_fields()
                  and entry.get("checksum") == _checksum(entry["request"], entry["response"]))
            response = entry["response"]
            if not ok:
                raise ValueError("key or checksum mismatch")
            _check_schema(entry)
            return LLMResponse(response["text"], response["input_tokens"], response["output_tokens"],
                               response.get("stop_reason"), cached=True)
        except (ValueError, KeyError, TypeError, AttributeError) as err:  # AttributeError: JSON of the wrong shape
            self.corrupt += 1
            log.warning("damaged autointerp cache entry %s (%s): ignoring it, the request is sent again", path, err)
            return None

    def put(self, request: LLMRequest, response: LLMResponse) -> None:
        path = self.path(request)
        body = {"text": response.text, "input_tokens": response.input_tokens, "output_tokens": response.output_tokens,
                "stop_reason": response.stop_reason}
        fields = request.cache_fields()
        write_json_atomic(path, {"format": CACHE_FORMAT, "key": path.stem, "request": fields, "response": body,
                                 "checksum": _checksum(fields, body)})

    def __len__(self) -> int:
        return sum(1 for _ in self.root.glob("*/*.json"))


def _checksum(request: dict[str, Any], response: dict[str, Any]) -> str:
    return stable_hash({"request": request, "response": response}, length=32)


def _check_schema(entry: dict[str, Any]) -> None:
    """ValueError unless the entry has this format and a response of the right types."""
    if entry.get("format") != CACHE_FORMAT:
        raise ValueError(f"format {entry.get('format')!r}, expected {CACHE_FORMAT}")
    r = entry["response"]
    if not isinstance(r["text"], str):
        raise ValueError(f"text is a {type(r['text']).__name__}, not a string")
    for name in ("input_tokens", "output_tokens"):
        if type(r[name]) is not int or r[name] < 0:
            raise ValueError(f"{name}={r[name]!r} is not a non-negative int")
    if r.get("stop_reason") is not None and not isinstance(r["stop_reason"], str):
        raise ValueError(f"stop_reason={r['stop_reason']!r} is not a string")
