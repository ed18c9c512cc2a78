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

DEFAULT_MAX_BYTES = 512 * 1024  # of bodies kept, per upstream; what they decode to is a few times more
DEFAULT_MAX_BODY_BYTES = 16 * 1024  # larger bodies are parsed each time: they rarely repeat, and would crowd the rest


class JsonBodies:
    """`json.loads` that returns the same objects for the same bytes, for the most recent small bodies."""

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.max_body_bytes = min(max_body_bytes, max_bytes)
        # Each entry is (value, size of its body): the cache's bound counts the bodies' bytes.
        self._decoded: LRUCache[bytes, tuple[Any, int]] = LRUCache(maxsize=max_bytes, getsizeof=lambda entry: entry[1])

    def decode(self, body: bytes) -> Any:
        """The JSON value of `body`; ValueError when it is malformed (never kept)."""
        if len(body) > self.max_body_bytes:
            return json.loads(body)
        entry = self._decoded.get(body)
        if entry is None:
            entry = self._decoded[body] = (json.loads(body), len(body) or 1)
        return entry[0]

    def __len__(self) -> int:
        return len(self._decoded)

    @property
    def bytes(self) -> int:
        """The size of the bodies kept."""
        return int(self._decoded.currsize)
