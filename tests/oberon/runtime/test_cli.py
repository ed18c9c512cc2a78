from __future__ import annotations

import socket
from pathlib import Path

import pytest

from oberon.runtime.cli import _with_admin, main, parser
from oberon.runtime.settings import Settings
from oberon.runtime.supervisor import free_port


def test_cli_check_accepts_a_valid_registry(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--site", str(site / "oberon.toml"), "check"], environ={}) == 0
    assert "5 components (1 apps, 4 others): OK" in capsys.readouterr().out


def test_cli_check_prints_every_error_with_file_and_field(
    site: Path, write_component, capsys: pytest.CaptureFixture[str]
) -> None:
    write_component("odd", 'name = "odd"\nversion = "x"\nowner = "t"\nsubscribes = ["nothing"]\n')
    assert main(["--site", str(site / "oberon.toml"), "check"], environ={}) == 1
    err = capsys.readouterr().err
    assert "the registry has 2 error(s)" in err
    assert f"{site}/components/odd/component.toml:version: 'x' is not a PEP 440 version" in err
    assert f"{site}/components/odd/component.toml:subscribes[0]: no component produces state key 'nothing'" in err


def test_cli_up_refuses_to_start_on_an_invalid_registry(
    site: Path, write_component, capsys: pytest.CaptureFixture[str]
) -> None:
    write_component("odd", 'name = "odd"\nversion = "1"\n')
    assert main(["--site", str(site / "oberon.toml"), "up", "--port", "1"], environ={}) == 1
    assert "odd/component.toml:owner: missing required field" in capsys.readouterr().err


def test_cli_reads_the_site_file_from_the_environment(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"], environ={"OBERON_SITE_FILE": str(site / "oberon.toml")}) == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("components = 3\n", "oberon.toml:components: expected a list of folder names"),
        ("colour = 1\n", "oberon.toml:colour: unknown field"),
        ('[bff]\nshop = "nonsense"\n', "oberon.toml:bff.shop: expected a URL or"),
        ("[bff\n", "not valid TOML"),
    ],
)
def test_cli_reports_a_bad_site_file(site: Path, text: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    (site / "oberon.toml").write_text(text)
    assert main(["--site", str(site / "oberon.toml"), "check"], environ={}) == 2
    assert message in capsys.readouterr().err


def test_cli_reports_a_missing_site_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--site", str(tmp_path / "none.toml"), "check"], environ={}) == 2
    assert "site file not found" in capsys.readouterr().err


def test_cli_reports_bad_settings(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"OBERON_SITE_FILE": str(site / "oberon.toml"), "OBERON_CACHE_DEGRADED_MAX_AGE": "3600"}
    assert main(["check"], environ=environ) == 2
    assert "60 to 300" in capsys.readouterr().err


def test_cli_up_reports_bad_faults(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (site / "oberon.toml").write_text(
        'components = ["components"]\n[backends]\nshop = "infra.local.services:create_app"\n'
    )
    environ = {"OBERON_FAULTS": "shop=sideways"}
    assert main(["--site", str(site / "oberon.toml"), "up", "--port", "1"], environ=environ) == 2
    assert "OBERON_FAULTS: " in capsys.readouterr().err


def test_cli_serve_refuses_an_unknown_service(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--site", str(site / "oberon.toml"), "serve", "nothing", "--port", "1"], environ={}) == 2
    assert "unknown service 'nothing'; this site runs renderer, gateway" in capsys.readouterr().err


def test_cli_serve_needs_the_url_of_each_service_it_calls(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--site", str(site / "oberon.toml"), "serve", "gateway", "--port", "1"], environ={}) == 2
    assert "no URL for renderer: pass --upstream renderer=URL" in capsys.readouterr().err


def test_cli_serve_refuses_a_malformed_upstream(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--site", str(site / "oberon.toml"), "serve", "renderer", "--port", "1", "--upstream", "bff:shop"]
    assert main(argv, environ={}) == 2
    assert "--upstream expects NAME=URL" in capsys.readouterr().err


@pytest.mark.parametrize("cdn", [[], ["--cdn"]])
def test_cli_up_refuses_a_public_host_with_the_demo_session_secret(
    site: Path, capsys: pytest.CaptureFixture[str], cdn: list[str]
) -> None:
    argv = ["--site", str(site / "oberon.toml"), "up", *cdn, "--host", "0.0.0.0", "--port", "1"]
    assert main(argv, environ={}) == 2  # with --cdn, Varnish would listen on every interface
    assert "set OBERON_SESSION_SECRET before serving on 0.0.0.0" in capsys.readouterr().err


def test_cli_up_reports_every_error_of_the_routing_table(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (site / "oberon.toml").write_text(
        'components = ["components"]\n[bff]\nshop = "http://shop.test"\n[gateway]\nroutes = "routes.toml"\n'
    )
    (site / "routes.toml").write_text(
        '[[route]]\nprefix = "/"\nupstream = "bff:shoe"\nauth = "always"\n\n'
        '[[route]]\nprefix = "/"\nupstream = "renderer"\nauth = "none"\n'
    )
    assert main(["--site", str(site / "oberon.toml"), "up", "--port", "1"], environ={}) == 2
    err = capsys.readouterr().err
    assert f"{site}/routes.toml:3: route.upstream: unknown upstream 'bff:shoe'; known: bff:shop, renderer" in err
    assert f"{site}/routes.toml:4: route.auth: expected one of none, optional, required, got 'always'" in err


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OBERON_JWT_ALGORITHMS": "none"}, "OBERON_JWT_ALGORITHMS: ['none'] not allowed"),
        ({"OBERON_JWT_ALGORITHMS": "HS256,RS256"}, "one key cannot serve both HMAC and RSA algorithms"),
        ({"OBERON_SESSION_SECRET": "short"}, "OBERON_SESSION_SECRET must be at least 32 characters"),
        ({"OBERON_TRUSTED_PROXIES": "10.0.0.0/8, the-cdn"}, "'the-cdn' is not an IP address or network"),
        ({"OBERON_ASSET_ORIGIN": "cdn.example"}, "OBERON_ASSET_ORIGIN must be scheme://host[:port]"),
    ],
)
def test_cli_reports_bad_gateway_settings(
    site: Path, environ: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--site", str(site / "oberon.toml"), "check"], environ=environ) == 2
    assert message in capsys.readouterr().err


def test_cli_up_refuses_a_busy_port_with_a_clear_error(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--site", str(site / "oberon.toml"), "up", "--port", str(port)], environ={}) == 2
    err = capsys.readouterr().err
    assert f"oberon: cannot listen on 127.0.0.1:{port}: Address already in use (another `oberon up`?)" in err
    assert "choose another port with --port" in err


def test_cli_up_split_refuses_a_busy_port_before_starting_anything(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--site", str(site / "oberon.toml"), "up", "--split", "--port", str(port)], environ={}) == 2
    captured = capsys.readouterr()
    assert "Address already in use" in captured.err
    assert "split topology" not in captured.out


def test_cli_up_refuses_a_busy_admin_port_with_a_clear_error(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        admin = taken.getsockname()[1]
        argv = ["--site", str(site / "oberon.toml"), "up", "--port", str(port), "--admin-port", str(admin)]
        assert main(argv, environ={}) == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{admin}" in err and "choose another port with --admin-port" in err


def test_cli_default_admin_port_gives_way_when_busy(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The default (public port + 1) is a convenience, not a request: another program may hold it.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1] - 1
        args = parser().parse_args(["up", "--port", str(port)])
        settings = _with_admin(Settings(port=port), args)
    assert settings.admin_listener_port not in (port, port + 1)
    assert f"the admin port {port + 1} is busy" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["up", "serve"])
def test_cli_refuses_an_admin_port_that_is_the_public_one(
    site: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    service = ["renderer"] if command == "serve" else []
    argv = ["--site", str(site / "oberon.toml"), command, *service, "--port", "8123", "--admin-port", "8123"]
    assert main(argv, environ={}) == 2
    assert "the admin listener needs a port of its own" in capsys.readouterr().err


def test_cli_up_with_a_registry_does_not_read_the_components_folders(
    site: Path, write_component, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_component("odd", 'name = "odd"\nversion = "1"\n')  # invalid: `oberon up` alone refuses it
    environ = {"OBERON_REGISTRY_CACHE_DIR": str(tmp_path / "cache"), "OBERON_REGISTRY_TOKEN": "t" * 32}
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: the follower's start is what fails
    argv = ["--site", str(site / "oberon.toml"), "up", "--registry", url, "--port", str(free_port()), "--workers", "1"]
    assert main(argv, environ=environ) == 2
    err = capsys.readouterr().err
    assert "odd/component.toml" not in err
    assert f"oberon: cannot start: the registry {url} cannot be followed" in err
    assert f"no disk copy to start from at {tmp_path / 'cache' / 'snapshot.json'}" in err


@pytest.mark.parametrize(
    ("args", "environ", "message"),
    [
        ((), {}, "OBERON_REGISTRY_TOKEN is not set: a renderer needs a token to read http://registry.test"),
        (("--dev",), {"OBERON_REGISTRY_TOKEN": "t" * 32}, "--dev reloads the components/ folders; it does not follow"),
    ],
)
def test_cli_up_with_a_registry_refuses_what_cannot_follow_it(
    site: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], environ: dict[str, str], message: str
) -> None:
    argv = ["--site", str(site / "oberon.toml"), "up", "--registry", "http://registry.test", "--port", str(free_port())]
    assert main([*argv, *args], environ=environ) == 2
    assert message in capsys.readouterr().err


def test_cli_serve_renderer_refuses_a_registry_url_that_is_not_http(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--site", str(site / "oberon.toml"), "serve", "renderer", "--port", str(free_port())]
    argv += ["--registry", "ftp://registry.test", "--upstream", "bff:shop=http://127.0.0.1:9"]
    assert main(argv, environ={"OBERON_REGISTRY_TOKEN": "t" * 32}) == 2
    assert "the registry URL must be http:// or https://, got 'ftp://registry.test'" in capsys.readouterr().err
