"""`Settings.from_environ` reads every row of the settings table, so the table (and the reference) cannot drift."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from oberon.exceptions import ConfigError
from oberon.runtime.settings import SETTINGS, Setting, Settings
from oberon.types import Mode

# A value other than the default for every variable, and what it fills its field with.
SAMPLES: dict[str, tuple[str, object]] = {
    "OBERON_SITE_FILE": ("site/other.toml", Path("site/other.toml")),
    "OBERON_HOST": ("0.0.0.0", "0.0.0.0"),
    "OBERON_PORT": ("9000", 9000),
    "OBERON_FAULTS": ("shop=down", "shop=down"),
    "OBERON_ADMIN_HOST": ("0.0.0.0", "0.0.0.0"),
    "OBERON_ADMIN_PORT": ("9100", 9100),
    "OBERON_ADMIN_TOKEN": ("an-admin-token-of-at-least-32-characters", "an-admin-token-of-at-least-32-characters"),
    "OBERON_UPSTREAM_TIMEOUT": ("1.5", 1.5),
    "OBERON_BUILD_DIR": ("out/assets", Path("out/assets")),
    "OBERON_PUBLIC_URL": ("https://tickets.example", "https://tickets.example"),
    "OBERON_LOG_FORMAT": ("json", "json"),
    "OBERON_TRACES_EXPORTER": ("console", "console"),
    "OBERON_HEADER_TIMEOUT": ("2.5", 2.5),
    "OBERON_MAX_CONNECTIONS": ("200", 200),
    "OBERON_WORKERS": ("4", 4),
    "OBERON_REGISTRY_URL": ("http://registry:8100", "http://registry:8100"),
    "OBERON_REGISTRY_TOKEN": ("t" * 32, "t" * 32),
    "OBERON_REGISTRY_ADMIN_TOKEN": ("p" * 32, "p" * 32),
    "OBERON_REGISTRY_CACHE_DIR": ("/var/cache/oberon", Path("/var/cache/oberon")),
    "OBERON_REGISTRY_POLL_SECONDS": ("0.5", 0.5),
    "OBERON_REGISTRY_CDN_PURGE": ("http://cdn-a:80, http://cdn-b:80", ("http://cdn-a:80", "http://cdn-b:80")),
    "OBERON_REGISTRY_CDN_PURGE_AGAIN_SECONDS": ("5", 5.0),
    "OBERON_ADMISSION": ("false", False),
    "OBERON_ADMISSION_MIN_LIMIT": ("16", 16),
    "OBERON_ADMISSION_INITIAL_LIMIT": ("100", 100),
    "OBERON_ADMISSION_MAX_LIMIT": ("500", 500),
    "OBERON_BREAKER_FAILURE_RATIO": ("0.75", 0.75),
    "OBERON_BREAKER_WINDOW_SECONDS": ("20", 20.0),
    "OBERON_BREAKER_MIN_CALLS": ("3", 3),
    "OBERON_BREAKER_OPEN_SECONDS": ("1.5", 1.5),
    "OBERON_BULKHEAD_MAX_IN_FLIGHT": ("32", 32),
    "OBERON_DEGRADATION_WINDOW_SECONDS": ("60", 60.0),
    "OBERON_DEGRADATION_MIN_CALLS": ("5", 5),
    "OBERON_DEGRADATION_ERROR_RATIO": ("0.5", 0.5),
    "OBERON_DEGRADATION_P95_MS": ("250", 0.25),
    "OBERON_DEGRADATION_OPEN_BREAKERS": ("2", 2),
    "OBERON_DEGRADATION_HOLD_SECONDS": ("0", 0.0),
    "OBERON_DEGRADED": ("degraded", Mode.DEGRADED),
    "OBERON_DEGRADATION_FILE": ("mode.txt", Path("mode.txt")),
    "OBERON_ESI": ("true", True),
    "OBERON_PAGE_CACHE_SECONDS": ("0", 0.0),
    "OBERON_STREAM_AFTER_MS": ("off", None),
    "OBERON_CACHE_SHARED_MAX_AGE": ("60", 60),
    "OBERON_CACHE_DEGRADED_MAX_AGE": ("120", 120),
    "OBERON_CACHE_FALLBACK_MAX_AGE": ("1", 1),
    "OBERON_CACHE_STALE_WHILE_REVALIDATE": ("10", 10),
    "OBERON_CACHE_STALE_IF_ERROR": ("600", 600),
    "OBERON_SESSION_SECRET": ("s" * 32, "s" * 32),
    "OBERON_SESSION_MAX_AGE": ("60", 60),
    "OBERON_SESSION_STORE": ("redis://127.0.0.1:6379/2", "redis://127.0.0.1:6379/2"),
    "OBERON_SIGN_IN_MAX_FAILURES": ("3", 3),
    "OBERON_SIGN_IN_WINDOW_SECONDS": ("600", 600),
    "OBERON_SIGN_IN_BACKOFF_SECONDS": ("2", 2),
    "OBERON_JWT_KEY": ("k" * 32, "k" * 32),
    "OBERON_JWT_ALGORITHMS": ("HS256, HS512", ("HS256", "HS512")),
    "OBERON_JWT_AUDIENCE": ("tickets", "tickets"),
    "OBERON_JWT_ISSUER": ("https://id.example", "https://id.example"),
    "OBERON_TRUSTED_PROXIES": ("10.0.0.0/8 192.0.2.1", ("10.0.0.0/8", "192.0.2.1")),
    "OBERON_MAX_HEADER_BYTES": ("16384", 16384),
    "OBERON_MAX_BODY_BYTES": ("0", 0),
    "OBERON_ASSET_ORIGIN": ("https://static.example", "https://static.example"),
    "OBERON_LOCALES": ("de, en-GB", ("de", "en-GB")),
    "OBERON_VISITOR_COOKIE": ("true", True),
}


def value_at(settings: Settings, field: str) -> object:
    owner: object = settings
    for part in field.split("."):
        owner = getattr(owner, part)
    return owner


def with_value(settings: Settings, field: str, value: object) -> Settings:
    section, dot, name = field.partition(".")
    if not dot:
        return replace(settings, **{section: value})
    return replace(settings, **{section: replace(getattr(settings, section), **{name: value})})


def test_settings_from_an_empty_environ_are_the_defaults() -> None:
    assert Settings.from_environ({}) == Settings()


def test_settings_table_names_each_variable_once_and_the_test_samples_each() -> None:
    names = [setting.name for setting in SETTINGS]
    assert len(names) == len(set(names)), "a variable is declared twice"
    assert all(name.startswith("OBERON_") for name in names)
    assert set(names) == set(SAMPLES), "give each row of SETTINGS a sample value in SAMPLES"


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda setting: setting.name)
def test_settings_from_environ_reads_each_variable_into_its_field(setting: Setting[object]) -> None:
    text, expected = SAMPLES[setting.name]
    assert value_at(Settings(), setting.field) != expected, "the sample must differ from the default"
    assert Settings.from_environ({setting.name: text}) == with_value(Settings(), setting.field, expected)


@pytest.mark.parametrize(
    "setting", [setting for setting in SETTINGS if setting.cast in (int, float, bool)], ids=lambda s: s.name
)
def test_settings_refuse_a_value_of_another_type_naming_the_variable(setting: Setting[object]) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_environ({setting.name: "many"})
    kind = setting.cast.__name__
    assert str(caught.value) == f"invalid setting: Config '{setting.name}' has value 'many'. Not a valid {kind}."


def test_settings_read_milliseconds_and_off_for_streaming() -> None:
    assert Settings.from_environ({"OBERON_STREAM_AFTER_MS": "25"}).stream_after_ms == 25.0
    with pytest.raises(ConfigError, match="OBERON_STREAM_AFTER_MS"):
        Settings.from_environ({"OBERON_STREAM_AFTER_MS": "-1"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OBERON_SESSION_STORE", "memcached://127.0.0.1:11211"),
        ("OBERON_SIGN_IN_MAX_FAILURES", "0"),
        ("OBERON_SIGN_IN_BACKOFF_SECONDS", "0"),
    ],
)
def test_settings_refuse_another_store_and_a_throttle_that_never_blocks(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Settings.from_environ({name: value})


@pytest.mark.parametrize("token", ["", "x", "s3cret-admin-token"])
def test_settings_refuse_an_empty_or_short_admin_token(token: str) -> None:
    with pytest.raises(ConfigError, match="OBERON_ADMIN_TOKEN must be at least 32 characters"):
        Settings.from_environ({"OBERON_ADMIN_TOKEN": token})


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OBERON_HEADER_TIMEOUT", "0"),
        ("OBERON_HEADER_TIMEOUT", "-1"),
        ("OBERON_MAX_CONNECTIONS", "0"),
        ("OBERON_WORKERS", "-1"),
    ],
)
def test_settings_refuse_entrance_limits_that_would_refuse_everything(variable: str, value: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Settings.from_environ({variable: value})


def test_settings_refuse_admission_bounds_out_of_order() -> None:
    with pytest.raises(ConfigError, match="OBERON_ADMISSION_MIN_LIMIT"):
        Settings.from_environ({"OBERON_ADMISSION_MIN_LIMIT": "100", "OBERON_ADMISSION_INITIAL_LIMIT": "50"})


@pytest.mark.parametrize("value", ["0", "-1"])
def test_settings_refuse_a_registry_poll_that_never_waits(value: str) -> None:
    with pytest.raises(ConfigError, match="OBERON_REGISTRY_POLL_SECONDS must be more than 0 seconds"):
        Settings.from_environ({"OBERON_REGISTRY_POLL_SECONDS": value})


def test_settings_refuse_a_negative_purge_repeat() -> None:
    with pytest.raises(ConfigError, match="OBERON_REGISTRY_CDN_PURGE_AGAIN_SECONDS must be 0 or more seconds"):
        Settings.from_environ({"OBERON_REGISTRY_CDN_PURGE_AGAIN_SECONDS": "-1"})


def test_the_registry_disk_copy_is_beside_the_site_file_unless_set() -> None:
    assert Settings(site_file=Path("site/oberon.toml")).registry_cache == Path("site/.oberon/registry-cache")
    assert Settings(registry_cache_dir=Path("/tmp/x")).registry_cache == Path("/tmp/x")
