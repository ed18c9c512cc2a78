"""The events team's BFF: the event hero and its venue."""

from __future__ import annotations

from bff.events.app import create_app as create_app

__all__ = ["create_app"]
