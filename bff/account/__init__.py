"""The account team's BFF: the signed-in user's profile."""

from __future__ import annotations

from bff.account.app import create_app as create_app

__all__ = ["create_app"]
