"""Structured logs: one JSON object per line, one line per request, and the request's ids on every line.

`configure("json")` for machines (the default when stderr is not a terminal), `configure("text")`
for a developer's terminal. Fields bound with `bound(...)` for the duration of a request (the
service, the gateway's request id, the trace id) appear on every line logged inside it, so a
warning from the resilient client names the request it happened in.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import json
import logging
import math
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, TextIO

import orjson

ACCESS_LOGGER = "oberon.access"
FORMATS = ("json", "text")

# What an access line's message already says; the text form does not repeat it.
_IN_ACCESS_MESSAGE = frozenset({"method", "path", "status", "duration_ms"})
_bound: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar("oberon_log_fields", default=None)
# Every attribute a plain LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@contextlib.contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add `fields` to every line logged in this block (and the tasks it starts)."""
    token = bind(fields)
    try:
        yield
    finally:
        _bound.reset(token)


def bind(fields: Mapping[str, Any]) -> contextvars.Token[Mapping[str, Any] | None]:
    """`bound` without its context manager (for a request's way through the server, every request):
    add `fields` until `unbind` with the token returned."""
    outer = _bound.get()
    return _bound.set({**outer, **fields} if outer else fields)


def unbind(token: contextvars.Token[Mapping[str, Any] | None]) -> None:
    _bound.reset(token)


def fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """The bound fields, then the record's `extra=` fields."""
    fields = dict(getattr(record, "_oberon_bound", None) or {})
    for key, value in vars(record).items():  # a loop, not a comprehension merged after: a line a request (issue 19)
        if key not in _STANDARD and key[:1] != "_":
            fields[key] = value
    return fields


class _Bind(logging.Filter):
    """Copies the bound fields onto each record when it is logged, while the context is still the caller's."""

    def filter(self, record: logging.LogRecord) -> bool:
        record._oberon_bound = _bound.get() or {}
        return True


class JsonFormatter(logging.Formatter):
    """`{"ts": …, "level": …, "logger": …, "message": …, <bound and extra fields>}` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = _head(record.created, record.levelname, record.name, record.getMessage())
        entry.update(fields_of(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry)


def _head(created: float, levelname: str, name: str, message: str) -> dict[str, Any]:
    """What a JSON line says first: when, how severe, which logger, the message."""
    return {"ts": _timestamp(created), "level": levelname.lower(), "logger": name, "message": message}


class _Lines(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler `configure` sets up (a `StreamHandler`, told apart by its type: see `write_line`)."""


def write_line(logger: logging.Logger, level: int, message: str, extra: Mapping[str, Any]) -> bool:
    """Write the JSON line that `logger.log(level, message, extra=extra)` would write, without the `LogRecord`
    (the access line: one a request, two in `oberon up`; issue 19): True when written, False when the record must
    be logged instead (then nothing was written).

    Only when that record would be a plain `LogRecord` and reach `configure`'s JSON handler alone, as `configure` set
    it up: `logger` has no filter, neither it nor its parents below the root a handler, the root has that one handler,
    with its own filter only and a level that lets `level` through. Any other handler (a test's `caplog`, one added
    by hand), a record factory, the text format or an `extra` key a record refuses: False. The caller checks
    `logger.isEnabledFor(level)` first, as `Logger.log` does.
    """
    known = _PLAIN_KEYS.issuperset(extra)  # every key seen before, plain: the line's dict made in one display
    if logger.filters or not (known or _plain(extra)) or logging.getLogRecordFactory() is not logging.LogRecord:
        return False
    root = logger
    while root.parent is not None:
        if root.handlers or not root.propagate:
            return False
        root = root.parent
    if len(root.handlers) != 1:
        return False
    handler = root.handlers[0]
    if type(handler) is not _Lines or type(handler.formatter) is not JsonFormatter or level < handler.level:
        return False
    if len(handler.filters) != 1 or type(handler.filters[0]) is not _Bind:
        return False
    # The formatter's dict (`_head`, then the bound fields, then the `extra=` ones) made in one display: merging
    # is `update`, so a key keeps its first place and takes its last value, as there.
    bound = _bound.get() or _NOTHING
    if known:
        entry = {
            "ts": _timestamp(time.time()),
            "level": _LEVELS.get(level) or logging.getLevelName(level).lower(),
            "logger": logger.name,
            "message": message,
            **bound,
            **extra,
        }
    else:  # a field starting with `_` is left out, as `fields_of` leaves it
        entry = _head(time.time(), logging.getLevelName(level), logger.name, message)
        entry.update(bound)
        for key, value in extra.items():
            if key[:1] != "_":
                entry[key] = value
    line = _encode(entry) + handler.terminator
    lock = handler.lock
    if lock is None:  # a handler whose `createLock` was undone: the record's way
        return False
    with lock:  # as `Handler.handle` does (its `acquire`, without the frame): a line at a time on the stream
        try:
            stream = handler.stream
            stream.write(line)
            if not getattr(stream, "line_buffering", False):  # else the line's end flushed it (stderr's way)
                stream.flush()  # `handler.flush()`, without taking the lock held here a second time
        except Exception:
            return False  # the record's way then reports it as logging does (`Handler.handleError`)
    return True


_NOTHING: Mapping[str, Any] = {}
# The standard levels' names as a line spells them, looked up (`getLevelName` is a call a line).
_LEVELS = {level: logging.getLevelName(level).lower() for level in (logging.DEBUG, logging.INFO, logging.WARNING)}
# `extra=` keys seen that a record takes and a line writes (not a record's own attribute, not starting with `_`):
# a line's keys are checked in one set operation, not one by one (issue 19). Bounded: keys come from code.
_PLAIN_KEYS: set[str] = set()
_MAX_PLAIN_KEYS = 1024


def _plain(extra: Mapping[str, Any]) -> bool:
    """False when a key of `extra` is one a `LogRecord` refuses (`makeRecord` raises `KeyError` for it); the plain
    ones are learned (`_PLAIN_KEYS`)."""
    if not _STANDARD.isdisjoint(extra):
        return False
    if len(_PLAIN_KEYS) < _MAX_PLAIN_KEYS:
        _PLAIN_KEYS.update(key for key in extra if key[:1] != "_")
    return True


def _encode(entry: Mapping[str, Any]) -> str:
    """`json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str)` at orjson's speed (a line a
    request: 0.8 µs against 7.5; issue 19). What orjson refuses (an integer beyond 64 bits, a lone surrogate) the
    standard library's encoder writes as it always did."""
    try:
        return orjson.dumps(entry, default=str, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        return _ENCODER.encode(entry)


# Dates and dataclasses as `str()` makes them, as `default=str` did; keys that are not strings as `json` writes them.
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# The standard library's encoder for what orjson refuses, made once, not per line.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str)
# The last second a line was logged in, and its text up to the seconds.
_second: list[tuple[float, str]] = [(-1.0, "")]
# A timestamp's milliseconds and zone, looked up: formatting the int was a fifth of the line's time (issue 19).
_MILLISECONDS = tuple(f".{milliseconds:03d}+00:00" for milliseconds in range(1000))


def _timestamp(created: float) -> str:
    """`datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")`, the date and time of day made
    once a second: the microseconds rounded as `datetime` rounds them (half to even), then cut to milliseconds."""
    fraction, whole = math.modf(created)
    micro = round(fraction * 1e6)
    if micro >= 1_000_000:
        whole, micro = whole + 1, micro - 1_000_000
    second, text = _second[0]  # one read: a line logged by another thread may replace it meanwhile
    if second != whole:
        text = datetime.datetime.fromtimestamp(whole, datetime.UTC).isoformat(timespec="seconds")[:-6]
        _second[0] = (whole, text)
    return text + _MILLISECONDS[micro // 1000]


class TextFormatter(logging.Formatter):
    """`12:00:01.234 INFO  [renderer] oberon.access: GET /e/1 200 12.3ms request_id=… fallbacks=…`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = fields_of(record)
        service = fields.pop("service", None)
        if record.name == ACCESS_LOGGER:
            fields = {key: value for key, value in fields.items() if key not in _IN_ACCESS_MESSAGE}
        when = datetime.datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        where = f"[{service}] " if service else ""
        extra = " ".join(f"{key}={_text(value)}" for key, value in fields.items() if value not in (None, "", [], ()))
        line = f"{when} {record.levelname:<5} {where}{record.name}: {record.getMessage()}"
        if extra:
            line += f"  {extra}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ",".join(str(item) for item in value)
    return str(value)


def default_format(stream: TextIO) -> str:
    """`text` on a terminal, `json` anywhere else (a log collector)."""
    return "text" if stream.isatty() else "json"


def configure(log_format: str | None = None, *, level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """Send every log line to `stream` (stderr) in `log_format` (`json` or `text`; by default as `default_format`)."""
    stream = stream or sys.stderr
    log_format = log_format or default_format(stream)
    if log_format not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {log_format!r}")
    handler = _Lines(stream)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(_Bind())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's loggers keep their own handlers unless told otherwise: route them through ours.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per upstream call is too much
