"""The trusted request context: headers only the gateway sets, and every upstream may believe.

The gateway deletes every incoming `X-Oberon-*` header and sets these from what it verified;
services behind it read them and nothing else about the caller.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

TRUSTED_PREFIX = "x-oberon-"
REQUEST_ID_HEADER = "X-Oberon-Request-Id"
USER_HEADER = "X-Oberon-User"
ROLES_HEADER = "X-Oberon-Roles"
AUTH_HEADER = "X-Oberon-Auth"
LOCALE_HEADER = "X-Oberon-Locale"
DEVICE_HEADER = "X-Oberon-Device"

# A response header, not request context: a BFF's error answer naming the dependency of its own that failed
# (`X-Oberon-Dependency-Failed: venues`). Its caller then does not count the answer against the BFF's breakers.
DEPENDENCY_FAILED_HEADER = "X-Oberon-Dependency-Failed"

# The device classes the gateway reads from User-Agent (gateway/context.py device_class; the CDN's VCL the same).
DEVICES = frozenset({"bot", "tablet", "mobile", "desktop"})
DEFAULT_DEVICE = "desktop"

ANONYMOUS = "anonymous"
DEFAULT_LOCALE = "en"

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
USER_ID = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


def first_values(raw: Iterable[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """Each header's first value by its name, as an ASGI scope has it: what Starlette's `Headers.get` finds (ASGI
    servers give names in lower case, and Starlette reads them so), from one pass over the scope's headers."""
    return dict(reversed(list(raw)))  # made in C: of a name given twice, the first value is set last


def parse_roles(value: str) -> tuple[str, ...]:
    """`"customer,staff"` as `("customer", "staff")`; malformed names are dropped."""
    return tuple(role for role in (part.strip() for part in value.split(",")) if ROLE.match(role))


def new_request_id() -> str:
    """32 hex digits, for a request that came without an id. Unique, not secret: no system call per request."""
    return f"{random.getrandbits(128):032x}"


# Canaries (issue 17): a visitor's bucket (00–99), which only the gateway sets, from the visitor cookie; and the
# cohort a page was rendered for — the canaries whose percentage is above the bucket, `name@version` sorted and
# space-separated, `stable` for none. The renderer following a registry answers `GET COHORT_PATH + "NN"` (public,
# 204, `Cache-Control: public, max-age=1`) with the bucket's cohort, so the CDN keys pages by cohort, not bucket.
BUCKET_HEADER = "X-Oberon-Bucket"
COHORT_HEADER = "X-Oberon-Cohort"
COHORT_PATH = "/_oberon/cohort/"
STABLE_COHORT = "stable"
BUCKETS = 100
BUCKET = re.compile(r"^[0-9]{2}$")


def bucket_value(bucket: int) -> str:
    """A bucket as the header and the visitor id spell it: two digits, `07`."""
    if not 0 <= bucket < BUCKETS:
        raise ValueError(f"a bucket is 0–{BUCKETS - 1}, got {bucket}")
    return f"{bucket:02d}"


def cohort(canaries: Iterable[tuple[str, str, int]], bucket: int) -> str:
    """The cohort of a bucket among `(name, version, percent)` canaries: those whose percent is above the bucket.

    Cohorts nest (a 30 % canary's bucket 10 is also in a 50 % one's), so n canaries make at most n + 1 cohorts.
    """
    names = sorted(f"{name}@{version}" for name, version, percent in canaries if percent > bucket)
    return " ".join(names) or STABLE_COHORT


def parse_bucket(value: str | None) -> int | None:
    """The bucket an `X-Oberon-Bucket` value names; None when it is absent or not two digits."""
    return int(value) if value is not None and BUCKET.match(value) else None
