from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def clean_environ() -> Iterator[None]:
    """Keep OBERON_* variables of the developer's shell out of the tests."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("OBERON_")}
    for key in saved:
        del os.environ[key]
    yield
    for key in [key for key in os.environ if key.startswith("OBERON_")]:
        del os.environ[key]
    os.environ.update(saved)
