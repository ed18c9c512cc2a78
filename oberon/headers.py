"""The trusted request context: headers only the gateway sets, and every upstream may believe.

The gateway deletes every incoming `X-Oberon-*` header and sets these from what it verified;
services behind it read them and nothing else about the caller.
"""

from __future__ import annotations

import random
import re

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

ANONYMOUS = "anonymous"
DEFAULT_LOCALE = "en"

REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
USER_ID = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
ROLE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
LOCALE = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$")


def parse_roles(value: str) -> tuple[str, ...]:
    """`"customer,staff"` as `("customer", "staff")`; malformed names are dropped."""
    return tuple(role for role in (part.strip() for part in value.split(",")) if ROLE.match(role))


def new_request_id() -> str:
    """32 hex digits, for a request that came without an id. Unique, not secret: no system call per request."""
    return f"{random.getrandbits(128):032x}"
