"""infra/k8s/ behind TLS and between pods: the gateway knows the browser is on https, and who may call whom."""

from __future__ import annotations

import ipaddress
from typing import Any

from oberon.runtime.k8s import BACKEND_VCL, INGRESS_NAMESPACE, resource_name, services
from oberon.runtime.settings import secrets_for
from tests.k8s.test_manifests import K8S, SITE, documents


def test_settings_tell_the_gateway_the_public_https_url_and_its_trusted_proxies() -> None:
    settings = next(
        document for document in documents("config.yaml") if document["metadata"]["name"] == "oberon-settings"
    )
    data = settings["data"]
    assert data["OBERON_PUBLIC_URL"].startswith("https://")
    networks = [ipaddress.ip_network(value) for value in data["OBERON_TRUSTED_PROXIES"].split()]
    assert networks and all(network.is_private for network in networks)
    assert "acl tls_terminators" in BACKEND_VCL  # Varnish believes X-Forwarded-Proto from the terminator only


def policies() -> list[dict[str, Any]]:
    return [document for document in documents("network-policies.yaml") if document["kind"] == "NetworkPolicy"]


def deployments() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted(K8S.glob("*.yaml"))
        for document in documents(path.name)
        if document["kind"] == "Deployment"
    ]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def callers(name: str) -> set[str]:
    """Who may call the pods of `name`: app names, `ingress:<namespace>`, `monitoring:<app>`, or `anyone`."""
    found: set[str] = set()
    for policy in policies():
        if not selects(policy["spec"]["podSelector"], {"app.kubernetes.io/name": name}):
            continue
        for rule in policy["spec"].get("ingress", []):
            if "from" not in rule:
                found.add("anyone")
            for peer in rule.get("from", []):
                pod = peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/name")
                namespace = peer.get("namespaceSelector", {}).get("matchLabels", {}).get("kubernetes.io/metadata.name")
                if namespace and pod:
                    found.add(f"{namespace}:{pod}")
                elif namespace:
                    found.add(f"ingress:{namespace}")
                else:
                    found.add(pod)
    return found


def test_network_policies_deny_every_ingress_in_the_namespace_by_default() -> None:
    (deny,) = [
        policy for policy in policies() if policy["spec"]["podSelector"] == {} and "ingress" not in policy["spec"]
    ]
    assert deny["spec"]["policyTypes"] == ["Ingress"]
    assert deny["metadata"]["namespace"] == "oberon"


def test_every_deployment_is_selected_by_a_policy_of_its_own() -> None:
    for deployment in deployments():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        own = [
            policy
            for policy in policies()
            if policy["spec"]["podSelector"] and selects(policy["spec"]["podSelector"], labels)
        ]
        assert own, f"no NetworkPolicy selects {deployment['metadata']['name']}"


def test_network_policies_let_each_service_be_called_only_by_its_callers() -> None:
    scrape = "monitoring:prometheus"
    ingress = f"ingress:{INGRESS_NAMESPACE}"
    assert callers("varnish") == {"anyone", scrape}
    assert callers("gateway") == {"varnish", ingress, scrape}
    assert callers("assets") == {"varnish", ingress, scrape}
    assert callers("renderer") == {"gateway", scrape}
    bffs = [name for name in services(SITE) if name.startswith("bff:")]
    assert bffs
    for bff in bffs:
        assert callers(bff.replace(":", "-")) == {"renderer", "gateway", scrape}, bff


def test_each_deployment_is_given_only_the_secrets_its_service_uses() -> None:
    # As the split topology does: the renderer, where teams' templates run, never holds the session secret.
    by_name = {document["metadata"]["name"]: document for document in deployments()}
    for service in services(SITE):
        (container,) = by_name[resource_name(service)]["spec"]["template"]["spec"]["containers"]
        given = {item["name"] for item in container.get("env", []) if "secretKeyRef" in item.get("valueFrom", {})}
        assert given == secrets_for(service), service
