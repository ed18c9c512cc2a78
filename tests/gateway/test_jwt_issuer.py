"""The JWT issuer check is exact (CVE-2024-53861: pyjwt 2.10.0 accepted an `iss` that was a substring of it)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from gateway.auth import BearerVerifier
from gateway.errors import AuthenticationError
from tests.gateway.conftest import AUDIENCE, JWT_KEY, make_token

ROOT = Path(__file__).resolve().parents[2]
ISSUER = "https://login.example.com"


def verifier() -> BearerVerifier:
    return BearerVerifier(key=JWT_KEY, algorithms=["HS256"], audience=AUDIENCE, issuer=ISSUER)


@pytest.mark.parametrize("issuer", ["https://login", "login.example", "h", ""])
def test_bearer_refuses_an_issuer_that_is_only_part_of_the_configured_one(issuer: str) -> None:
    with pytest.raises(AuthenticationError, match="another issuer"):
        verifier().verify(make_token(iss=issuer))


def test_bearer_accepts_exactly_the_configured_issuer() -> None:
    assert verifier().verify(make_token(iss=ISSUER)).user == "alice"


def test_pyjwt_floor_excludes_the_release_with_the_substring_issuer_check() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (pyjwt,) = [Requirement(line) for line in project["dependencies"] if line.lower().startswith("pyjwt")]
    assert not pyjwt.specifier.contains(Version("2.10.0"))
    assert pyjwt.specifier.contains(Version("2.10.1"))
