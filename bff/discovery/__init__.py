"""The discovery team's BFF: featured and related events, search and categories."""

from __future__ import annotations

from bff.discovery.app import create_app as create_app

__all__ = ["create_app"]
