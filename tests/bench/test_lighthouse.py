"""bench/lighthouse.py: a Lighthouse report's scorecard and what falls short in it. No browser, no servers."""

from __future__ import annotations

import json
from typing import Any

from bench.lighthouse import CATEGORIES, Scorecard, summarize

FCP = {"title": "First Contentful Paint", "score": 1, "scoreDisplayMode": "numeric", "displayValue": "1 s"}


def report(scores: dict[str, float | None], audits: dict[str, tuple[str, str, float | None, str]]) -> dict[str, Any]:
    """A Lighthouse JSON report cut to what `summarize` reads; audits: id → (category, title, score, mode)."""
    return {
        "lighthouseVersion": "12.2.3",
        "environment": {"hostUserAgent": "HeadlessChrome/156.0.0.0"},
        "configSettings": {"formFactor": "mobile", "throttlingMethod": "simulate", "throttling": {"rttMs": 150}},
        "categories": {
            name: {
                "score": scores.get(name, 1.0),
                "auditRefs": [{"id": audit_id} for audit_id, audit in audits.items() if audit[0] == name],
            }
            for name in CATEGORIES
        },
        "audits": {
            audit_id: {"title": title, "score": score, "scoreDisplayMode": mode}
            for audit_id, (_, title, score, mode) in audits.items()
        }
        | {"first-contentful-paint": FCP},
    }


def card(lhr: dict[str, Any]) -> Scorecard:
    return summarize(lhr, page="event", path="/e/1", command="lighthouse …")


def test_a_category_under_90_names_the_page_the_category_its_score_and_the_failed_audits() -> None:
    lhr = report(
        {"seo": 0.66},
        {
            "is-crawlable": ("seo", "Page is blocked from indexing", 0, "binary"),
            "document-title": ("seo", "Document has a `<title>` element", 1, "binary"),
            "structured-data": ("seo", "Structured data is valid", None, "manual"),
        },
    )
    assert card(lhr).shortfalls() == [
        "event page (/e/1): seo 66 < 90; failed audits: is-crawlable (Page is blocked from indexing)"
    ]


def test_every_category_at_90_passes_and_failed_audits_are_still_recorded() -> None:
    lhr = report(
        {"performance": 0.9},
        {"uses-text-compression": ("performance", "Enable text compression", 0.5, "metricSavings")},
    )
    scorecard = card(lhr)
    assert scorecard.shortfalls() == []
    recorded = json.loads(scorecard.to_json())
    assert recorded["scores"] == {"performance": 90, "accessibility": 100, "best-practices": 100, "seo": 100}
    assert recorded["failed_audits"] == {
        "performance": [{"id": "uses-text-compression", "title": "Enable text compression", "score": 0.5}]
    }
    assert recorded["lighthouse"] == "12.2.3" and recorded["settings"]["throttling_method"] == "simulate"
    assert recorded["metrics"] == {"first-contentful-paint": "1 s"} and recorded["command"] == "lighthouse …"


def test_a_page_lighthouse_could_not_load_falls_short_with_its_reason() -> None:
    lhr = report(dict.fromkeys(CATEGORIES), {})
    lhr["runtimeError"] = {"code": "ERRORED_DOCUMENT_REQUEST", "message": "unable to load (Status code: 404)"}
    assert card(lhr).shortfalls() == [
        "event page (/e/1): no scores, Lighthouse could not audit it: "
        "ERRORED_DOCUMENT_REQUEST: unable to load (Status code: 404)"
    ]
