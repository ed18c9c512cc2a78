"""infra/k8s/registry.yaml: the registry service on PostgreSQL, its secrets required, reached by the renderers only."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from oberon.runtime.k8s import IMAGE, REGISTRY_PORT, SITE_FILE
from tests.k8s.test_manifests import ROOT, by_kind, documents
from tests.k8s.test_security import callers, policies

SERVE = [
    *("python", "-m", "oberon", "--site", str(SITE_FILE)),
    *("registry", "serve", "--host", "0.0.0.0", "--port", "8090", "--database", "$(OBERON_REGISTRY_DATABASE)"),
]


def container() -> dict[str, Any]:
    (only,) = by_kind("registry.yaml")["Deployment"]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def secret_keys(env: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        item["name"]: item["valueFrom"]["secretKeyRef"] for item in env if "secretKeyRef" in item.get("valueFrom", {})
    }


def test_registry_has_a_deployment_a_service_and_a_disruption_budget() -> None:
    assert [document["kind"] for document in documents("registry.yaml")] == [
        "Deployment",
        "Service",
        "PodDisruptionBudget",
    ]
    kinds = by_kind("registry.yaml")
    assert kinds["Deployment"]["spec"]["replicas"] >= 2  # its state is in PostgreSQL: replicas are interchangeable
    assert kinds["Service"]["metadata"]["name"] == "registry"  # renderers reach it at http://registry
    assert kinds["Service"]["spec"]["selector"] == kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert kinds["Service"]["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert kinds["PodDisruptionBudget"]["spec"]["selector"] == kinds["Deployment"]["spec"]["selector"]


def test_registry_runs_oberon_registry_serve_with_the_database_url_of_its_secret() -> None:
    registry = container()
    assert registry["image"] == IMAGE
    assert registry["command"] == SERVE
    assert registry["ports"] == [{"name": "http", "containerPort": REGISTRY_PORT, "protocol": "TCP"}]
    # Kubernetes expands $(VAR) only for a variable the container defines; else the literal text would be the URL.
    expanded = set(re.findall(r"\$\((\w+)\)", " ".join(registry["command"])))
    assert expanded == {"OBERON_REGISTRY_DATABASE"} <= {item["name"] for item in registry["env"]}


def test_registry_database_and_platform_token_are_required_keys_of_the_secret() -> None:
    # Fail closed: without either key the pod does not start, rather than running on an embedded or open default.
    assert secret_keys(container()["env"]) == {
        name: {"name": "oberon-secrets", "key": name, "optional": False}
        for name in ("OBERON_REGISTRY_DATABASE", "OBERON_REGISTRY_ADMIN_TOKEN")
    }
    assert all("value" not in item for item in container()["env"])  # no secret written into the manifests


def test_registry_probes_its_health_and_outlasts_a_long_poll_when_stopped() -> None:
    registry = container()
    assert registry["readinessProbe"]["httpGet"] == {"path": "/registry/v1/health", "port": "http"}
    # A database outage makes the pods unready, never restarts them (they could not start without it).
    assert registry["livenessProbe"]["tcpSocket"] == {"port": "http"}
    pod = by_kind("registry.yaml")["Deployment"]["spec"]["template"]["spec"]
    pause = int(registry["lifecycle"]["preStop"]["exec"]["command"][1])
    assert pod["terminationGracePeriodSeconds"] > pause + 30  # a snapshot poll waits at most 30 s


def test_registry_runs_locked_down_like_every_service() -> None:
    registry = container()
    pod = by_kind("registry.yaml")["Deployment"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert registry["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(registry["resources"]) == {"requests", "limits"}
    assert {"name": "tmp", "mountPath": "/tmp"} in registry["volumeMounts"]


def test_only_the_renderer_reaches_the_registry() -> None:
    assert callers("registry") == {"renderer", "monitoring:prometheus"}
    (own,) = [policy for policy in policies() if policy["metadata"]["name"] == "registry"]
    assert own["spec"]["ingress"] == [
        {
            "from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/name": "renderer"}}}],
            "ports": [{"port": "http", "protocol": "TCP"}],
        }
    ]
    for path in sorted(Path(ROOT / "infra" / "k8s").glob("*.yaml")):
        for document in documents(path.name):
            if document["kind"] in ("Ingress", "Service") and document["metadata"]["name"] != "registry":
                assert "registry" not in yaml.safe_dump(document["spec"]), path.name  # nothing public routes to it


def test_renderers_read_their_components_until_the_operator_points_them_at_the_registry() -> None:
    # No site switch says "follow a registry": the renderer runs the image's components/ (docs/operator.md
    # says how to set OBERON_REGISTRY_URL on it); its token comes from the Secret when one is there.
    (renderer,) = by_kind("renderer.yaml")["Deployment"]["spec"]["template"]["spec"]["containers"]
    registry = [item for item in renderer.get("env", []) if item["name"].startswith("OBERON_REGISTRY_")]
    assert registry == [
        {
            "name": "OBERON_REGISTRY_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": "oberon-secrets", "key": "OBERON_REGISTRY_TOKEN", "optional": True}},
        }
    ]
    guide = (ROOT / "docs" / "operator.md").read_text()
    assert "OBERON_REGISTRY_URL=http://registry" in guide and "OBERON_REGISTRY_TOKEN" in guide


def test_the_image_runs_the_registry_as_the_manifest_does() -> None:
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", (ROOT / "Dockerfile").read_text(), re.M)
    assert entrypoint is not None
    prefix = yaml.safe_load(entrypoint.group(1))
    assert container()["command"][: len(prefix)] == prefix
