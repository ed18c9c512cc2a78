"""The checkout team's BFF: ticket tiers and the cart."""

from __future__ import annotations

from bff.checkout.app import create_app as create_app

__all__ = ["create_app"]
