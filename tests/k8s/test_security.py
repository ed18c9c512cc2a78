"""infra/k8s/ behind TLS and between pods: the gateway knows the browser is on https, and who may call whom."""

from __future__ import annotations

import ipaddress

from oberon.runtime.k8s import BACKEND_VCL
from tests.k8s.test_manifests import documents


def test_settings_tell_the_gateway_the_public_https_url_and_its_trusted_proxies() -> None:
    settings = next(
        document for document in documents("config.yaml") if document["metadata"]["name"] == "oberon-settings"
    )
    data = settings["data"]
    assert data["OBERON_PUBLIC_URL"].startswith("https://")
    networks = [ipaddress.ip_network(value) for value in data["OBERON_TRUSTED_PROXIES"].split()]
    assert networks and all(network.is_private for network in networks)
    assert "acl tls_terminators" in BACKEND_VCL  # Varnish believes X-Forwarded-Proto from the terminator only
