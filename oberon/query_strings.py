"""Query strings as caches should key them: without tracking parameters, and (for a key) in one order.

`?utm_source=x&q=jazz` and `?q=jazz` are one page: the gateway strips tracking parameters before a request
reaches an upstream, the CDN's VCL does the same and sorts what is left, and keys of kept pages use
`cache_key_query`. The renderer reads only an app's declared parameters anyway (oberon.pipeline.query).
"""

from __future__ import annotations

TRACKING_PREFIXES = (b"utm_",)
TRACKING_NAMES = frozenset({b"gclid", b"fbclid", b"msclkid", b"mc_cid", b"mc_eid"})


def _tracking(field: bytes) -> bool:
    name = field.split(b"=", 1)[0].lower()
    return name in TRACKING_NAMES or name.startswith(TRACKING_PREFIXES)


def strip_tracking(query: bytes) -> bytes:
    """`query` without its tracking fields (`utm_*`, `gclid`, `fbclid`, `msclkid`, `mc_cid`, `mc_eid`) or empty
    ones; the others as they came, in their order."""
    if not query:
        return query
    fields = query.split(b"&")
    kept = [field for field in fields if field and not _tracking(field)]
    return query if len(kept) == len(fields) else b"&".join(kept)


def cache_key_query(query: bytes) -> bytes:
    """`query` without tracking fields, sorted: one spelling for a key (as the VCL's `std.querysort`)."""
    return b"&".join(sorted(strip_tracking(query).split(b"&"))) if query else query
