"""Structured logs: one JSON object per line with the bound request fields; a readable text form."""

from __future__ import annotations

import dataclasses
import datetime
import io
import json
import logging
import time

import pytest

from oberon import logs
from oberon.logs import JsonFormatter, TextFormatter, bound, configure, default_format


def test_json_lines_carry_bound_and_extra_fields(restore_logging: None) -> None:
    stream = io.StringIO()
    configure("json", stream=stream)
    logger = logging.getLogger("oberon.test")
    with bound(service="renderer", request_id="req-1"):
        logger.info("GET %s", "/e/1", extra={"status": 200, "fallbacks": ["related-events"]})
    logger.warning("outside")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "GET /e/1"
    assert first["level"] == "info" and first["logger"] == "oberon.test"
    assert first["service"] == "renderer" and first["request_id"] == "req-1"
    assert first["status"] == 200 and first["fallbacks"] == ["related-events"]
    assert first["ts"].endswith("+00:00")
    assert "service" not in second and second["level"] == "warning"


def test_json_line_of_an_exception_stays_one_line(restore_logging: None) -> None:
    stream = io.StringIO()
    configure("json", stream=stream)
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        logging.getLogger("oberon.test").exception("failed")
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "failed" and "ValueError: bad" in entry["exception"]


def test_json_lines_write_any_value_as_the_standard_library_would(restore_logging: None) -> None:
    """Lines are encoded by orjson; what it refuses (an integer beyond 64 bits, a lone surrogate) falls back to
    `json`, and what neither knows is written as `str()` makes it."""

    @dataclasses.dataclass
    class Point:
        x: int

    stream = io.StringIO()
    configure("json", stream=stream)
    logger = logging.getLogger("oberon.test")
    when = datetime.datetime(2026, 1, 2, 3, 4, 5)
    logger.info("values", extra={"big": 2**70, "when": when, "point": Point(1), "ids": {7}, "text": "é\n"})
    logger.info("lone", extra={"odd": "\ud800"})
    logger.info("not a number", extra={"ratio": float("nan")})
    first, second, third = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["big"] == 2**70 and first["when"] == "2026-01-02 03:04:05"
    assert first["point"] == "test_json_lines_write_any_value_as_the_standard_library_would.<locals>.Point(x=1)"
    assert first["ids"] == "{7}" and first["text"] == "é\n"
    assert second["odd"] == "\ud800"
    assert third["ratio"] is None  # valid JSON (the standard library wrote `NaN`, which JSON has not)


def test_text_lines_are_readable() -> None:
    record = logging.makeLogRecord(
        {
            "name": "oberon.access",
            "levelname": "INFO",
            "msg": "GET /e/1 200 3.2ms",
            "request_id": "req-1",
            "status": 200,
        }
    )
    record._oberon_bound = {"service": "renderer"}
    line = TextFormatter().format(record)
    assert line.endswith("INFO  [renderer] oberon.access: GET /e/1 200 3.2ms  request_id=req-1")


def test_format_defaults_to_text_on_a_terminal_only() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert default_format(Terminal()) == "text"
    assert default_format(io.StringIO()) == "json"


def test_configure_refuses_an_unknown_format(restore_logging: None) -> None:
    with pytest.raises(ValueError, match="log format"):
        configure("xml", stream=io.StringIO())


@pytest.mark.parametrize(
    "created",
    [1_800_000_000.0, 1_800_000_000.0004995, 1_800_000_000.0005, 1_800_000_000.9994999, 1_800_000_000.9999995,
     1_800_000_000.9999996, 1_800_000_001.123456, 1_799_999_999.999, 0.0005],
)  # fmt: skip
def test_json_timestamp_is_datetimes_to_the_millisecond_made_once_a_second(created: float) -> None:
    record = logging.makeLogRecord({"name": "oberon.test", "msg": "x", "levelno": logging.INFO})
    record.created = created
    expected = datetime.datetime.fromtimestamp(created, datetime.UTC).isoformat(timespec="milliseconds")
    assert json.loads(JsonFormatter().format(record))["ts"] == expected
    record.created = created + 0.25  # the same second's text, reused, or the next one's
    expected = datetime.datetime.fromtimestamp(created + 0.25, datetime.UTC).isoformat(timespec="milliseconds")
    assert json.loads(JsonFormatter().format(record))["ts"] == expected


@pytest.mark.parametrize(
    ("fields", "extra"),
    [
        ({"service": "renderer", "request_id": None}, {"request_id": "req-1", "status": 200, "level": "odd"}),
        ({"service": "renderer", "_kept": 1}, {"_kept": 2, "_dropped": 3, "route": "/e/{id}"}),
        ({}, {"fallbacks": [], "when": datetime.date(2026, 12, 7)}),
    ],
)
def test_write_line_writes_the_line_the_record_would_first_and_every_time_after(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch, fields: dict[str, object], extra: dict[str, object]
) -> None:
    """Issue 19: `write_line` learns which `extra=` keys are plain (merged in one step from then on); the line is the
    formatter's either way: a bound field overridden in its place, an `extra` `level`, `_` fields left out."""
    monkeypatch.setattr(logs, "_PLAIN_KEYS", set())
    monkeypatch.setattr(time, "time", lambda: 1_765_000_000.25)
    stream = io.StringIO()
    configure("json", stream=stream)
    logger = logging.getLogger("oberon.access")
    record = logging.LogRecord("oberon.access", logging.INFO, __file__, 0, "GET / 200 1.0ms", None, None)
    record.created = 1_765_000_000.25
    vars(record).update(extra)
    record._oberon_bound = fields
    expected = JsonFormatter().format(record) + "\n"
    with bound(**fields):
        for _ in range(2):
            assert logs.write_line(logger, logging.INFO, "GET / 200 1.0ms", extra)
    assert stream.getvalue() == expected * 2
    assert not logs.write_line(logger, logging.INFO, "refused", {**extra, "msg": "x"})  # after its keys were learned
    assert "msg" not in logs._PLAIN_KEYS and not any(key.startswith("_") for key in logs._PLAIN_KEYS)


@pytest.mark.parametrize("line_buffering", [True, False])
@pytest.mark.parametrize("level", [logging.INFO, logging.WARNING, 25])
def test_write_line_reaches_the_file_under_its_stream_with_the_levels_name(
    restore_logging: None, line_buffering: bool, level: int
) -> None:
    """A line-buffered stream (stderr's kind) is flushed by the line's end, any other by `write_line`; the level's name
    is the one `logging` gives it (looked up for the standard ones)."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", line_buffering=line_buffering)
    configure("json", stream=stream)
    logger = logging.getLogger("oberon.access")
    assert logs.write_line(logger, level, "GET / 200 1.0ms", {"status": 200})
    line = json.loads(raw.getvalue())
    assert line["level"] == logging.getLevelName(level).lower() and line["status"] == 200
