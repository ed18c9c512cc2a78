"""Decoded JSON bodies, shared while an upstream answers the very same bytes.

Most answers repeat: an event's details, a listing that has not changed. An upstream that sends the
same bytes again gets back the objects decoded from them last time: no second parse, and every
component rendered from them is rendered once (`RenderedFragments` matches data by identity).
Nothing is answered without a call: the bytes came from this call, so `no-store` still holds. The
decoded values are read-only everywhere in Oberon; coalesced calls and the response cache already
share them between pages.
"""

from __future__ import annotations

import json
from typing import Any

from cachetools import LRUCache

DEFAULT_MAX_ENTRIES = 256
DEFAULT_MAX_BODY_BYTES = 16 * 1024  # larger bodies are parsed each time: they rarely repeat, and would crowd the rest
_MISSING = object()


class JsonBodies:
    """`json.loads` that returns the same objects for the same bytes, for the last few hundred small bodies."""

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.max_body_bytes = max_body_bytes
        self._decoded: LRUCache[bytes, Any] = LRUCache(maxsize=max_entries)

    def decode(self, body: bytes) -> Any:
        """The JSON value of `body`; ValueError when it is malformed (never kept)."""
        if len(body) > self.max_body_bytes:
            return json.loads(body)
        value = self._decoded.get(body, _MISSING)
        if value is _MISSING:
            value = self._decoded[body] = json.loads(body)
        return value

    def __len__(self) -> int:
        return len(self._decoded)
