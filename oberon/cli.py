"""The `oberon` command: `oberon check` validates the registry, `oberon up` runs the site."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import uvicorn

from oberon.config import Settings, Site
from oberon.exceptions import ConfigError, RegistryError
from oberon.registry import Registry, load_registry
from oberon.rendering import create_environment
from oberon.topology import build_embedded


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = argparse.ArgumentParser(prog="oberon", description="Oberon micro-frontend rendering platform.")
    parser.add_argument("--site", type=Path, help="the site file (default: oberon.toml, or OBERON_SITE_FILE)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="validate every component of the registry")
    up = commands.add_parser("up", help="run the site: renderer, BFFs and stand-in backends on one port")
    up.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    up.add_argument("--port", type=int, help="port of the browser's entrance (default 8000)")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_environ(os.environ if environ is None else environ)
        if args.site:
            settings = replace(settings, site_file=args.site)
        site = Site.load(settings.site_file)
        environment = create_environment()
        registry = load_registry(site.components, environment=environment)
    except ConfigError as exc:
        print(f"oberon: {exc}", file=sys.stderr)
        return 2
    except RegistryError as exc:
        print(f"oberon: the registry has {len(exc.errors)} error(s):", file=sys.stderr)
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        return 1

    if args.command == "check":
        print(f"oberon: {_summary(registry)}: OK")
        return 0

    settings = replace(settings, host=args.host or settings.host, port=args.port or settings.port)
    try:
        embedded = build_embedded(site, settings, registry=registry, environment=environment)
    except ConfigError as exc:
        print(f"oberon: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    base = f"http://{settings.host}:{settings.port}"
    print(f"oberon: {_summary(registry)}", flush=True)
    print(f"oberon: site      {base}/", flush=True)
    print(f"oberon: registry  {base}/_oberon/registry", flush=True)
    print(f"oberon: health    {base}/_oberon/health", flush=True)
    for name in embedded.bffs:
        print(f"oberon: bff       {base}/bff/{name}/", flush=True)
    for name in embedded.backends:
        print(f"oberon: backend   {base}/_backends/{name}/  (faults: {base}/_backends/{name}/_faults)", flush=True)
    config = uvicorn.Config(embedded.app, host=settings.host, port=settings.port, log_level="info", lifespan="on")
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else 1


def _summary(registry: Registry) -> str:
    apps = len(registry.apps())
    return f"{len(registry)} components ({apps} apps, {len(registry.names()) - apps} others)"


if __name__ == "__main__":
    sys.exit(main())
