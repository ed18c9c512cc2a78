"""infra/k8s/: generated from the site, valid for Kubernetes 1.30 (kubernetes-validate, offline), and running
each service exactly as the split topology does; the Dockerfile agrees with them."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from oberon.runtime.cdn import check_vcl
from oberon.runtime.k8s import (
    ADMIN_PORT,
    BACKEND_VCL,
    PORT,
    SITE_FILE,
    command,
    dump,
    manifests,
    services,
    upstream_urls,
)
from oberon.runtime.reference import variables
from oberon.runtime.supervisor import serve_command
from oberon.site import GATEWAY, Site, service_names

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "infra" / "k8s"
SITE = Site.load(ROOT / "oberon.toml")
REGENERATE = "regenerate them: .venv/bin/python -m oberon.runtime.k8s infra/k8s"


def documents(name: str) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all((K8S / name).read_text()) if document]


def by_kind(name: str) -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for document in documents(name)}


def validator() -> str:
    found = shutil.which("kubernetes-validate") or str(Path(sys.executable).parent / "kubernetes-validate")
    assert Path(found).exists(), "kubernetes-validate is in the dev extra: pip install -e '.[dev]'"
    return found


def test_manifests_are_the_generated_ones() -> None:
    expected = manifests(SITE)
    committed = {path.name: path.read_text() for path in K8S.glob("*.yaml")}
    assert sorted(committed) == sorted(expected), f"infra/k8s/ has other files than the generator writes; {REGENERATE}"
    for name, text in expected.items():
        assert committed[name] == text, f"infra/k8s/{name} is out of date; {REGENERATE}"


def test_manifests_validate_against_kubernetes_1_30_offline() -> None:
    files = sorted(str(path) for path in K8S.glob("*.yaml"))
    result = subprocess.run(
        [validator(), "--strict", "-k", "1.30.0", *files], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == sum(len(documents(Path(file).name)) for file in files)


def test_validator_rejects_a_broken_manifest(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    deployment = by_kind("renderer.yaml")["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/typo"
    broken.write_text(yaml.safe_dump(deployment))
    result = subprocess.run(
        [validator(), "--strict", "-k", "1.30.0", str(broken)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode != 0


@pytest.mark.parametrize("service", services(SITE))
def test_each_service_has_a_deployment_service_autoscaler_and_disruption_budget(service: str) -> None:
    name = service.replace(":", "-")
    kinds = by_kind(f"{name}.yaml")
    assert set(kinds) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/_oberon/health", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/_oberon/health", "port": "admin"}
    assert container["ports"] == [
        {"name": "http", "containerPort": PORT, "protocol": "TCP"},
        {"name": "admin", "containerPort": ADMIN_PORT, "protocol": "TCP"},
    ]
    assert container["command"][container["command"].index("--admin-port") + 1] == str(ADMIN_PORT)
    annotations = kinds["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert (annotations["prometheus.io/port"], annotations["prometheus.io/path"]) == (str(ADMIN_PORT), "/metrics")
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert pod["terminationGracePeriodSeconds"] > 5
    assert kinds["Service"]["spec"]["selector"] == kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == name
    assert kinds["PodDisruptionBudget"]["spec"]["selector"] == kinds["Deployment"]["spec"]["selector"]


def test_no_service_or_ingress_exposes_the_admin_port() -> None:
    """The admin listener (/metrics, detailed health, registry, degradation) is for the pod's IP only."""
    exposed = 0
    for path in sorted(K8S.glob("*.yaml")):
        for document in documents(path.name):
            if document["kind"] == "Service":
                for port in document["spec"]["ports"]:
                    exposed += 1
                    assert port["targetPort"] not in ("admin", ADMIN_PORT, str(ADMIN_PORT)), path.name
                    assert port["port"] != ADMIN_PORT, path.name
            if document["kind"] == "Ingress":
                assert "admin" not in str(document) and str(ADMIN_PORT) not in str(document), path.name
    assert exposed  # there are Services, and none of them reaches the admin listener


def test_every_bff_of_the_site_is_deployed() -> None:
    deployed = {path.stem for path in K8S.glob("bff-*.yaml")}
    assert deployed == {f"bff-{team}" for team in SITE.bffs}


@pytest.mark.parametrize("service", [name for name in service_names(SITE) if not name.startswith("backend:")])
def test_each_container_runs_the_split_topologys_command(service: str) -> None:
    (container,) = by_kind(f"{service.replace(':', '-')}.yaml")["Deployment"]["spec"]["template"]["spec"]["containers"]
    urls = upstream_urls(SITE)
    split = serve_command(
        service,
        port=PORT,
        host="0.0.0.0",
        admin_port=ADMIN_PORT,
        admin_host="0.0.0.0",
        site=SITE_FILE,
        upstreams=urls,
        parent_pid=1,
    )
    assert container["command"] == ["python", *split[1 : split.index("--parent-pid")]]
    # The same upstreams `oberon up --split` hands each child: every service but the gateway and itself.
    argv = container["command"]
    named = {value.split("=", 1)[0] for flag, value in zip(argv, argv[1:], strict=False) if flag == "--upstream"}
    assert named == {name for name in service_names(SITE) if name not in (GATEWAY, service)}


def test_backend_urls_come_from_the_backends_config_map() -> None:
    backends = {document["metadata"]["name"]: document for document in documents("config.yaml")}["oberon-backends"]
    (container,) = by_kind("bff-events.yaml")["Deployment"]["spec"]["template"]["spec"]["containers"]
    expanded = re.findall(r"\$\((\w+)\)", " ".join(container["command"]))
    assert expanded and set(expanded) <= set(backends["data"])
    assert {"configMapRef": {"name": "oberon-backends"}} in container["envFrom"]


def test_settings_config_map_names_only_real_settings() -> None:
    settings = {document["metadata"]["name"]: document for document in documents("config.yaml")}["oberon-settings"]
    known = {variable.name for variable in variables()}
    assert set(settings["data"]) <= known


def test_renderer_reads_the_degradation_switch_from_its_config_map() -> None:
    configs = {document["metadata"]["name"]: document for document in documents("config.yaml")}
    switch_file = Path(configs["oberon-settings"]["data"]["OBERON_DEGRADATION_FILE"])
    assert configs["oberon-degradation"]["data"] == {switch_file.name: "auto"}
    pod = by_kind("renderer.yaml")["Deployment"]["spec"]["template"]["spec"]
    mount = next(mount for mount in pod["containers"][0]["volumeMounts"] if mount["name"] == "degradation")
    assert mount["mountPath"] == str(switch_file.parent)
    assert {"name": "degradation", "configMap": {"name": "oberon-degradation"}} in pod["volumes"]


def test_gateway_takes_its_session_secret_from_a_secret() -> None:
    (container,) = by_kind("gateway.yaml")["Deployment"]["spec"]["template"]["spec"]["containers"]
    secret = next(item for item in container["env"] if item["name"] == "OBERON_SESSION_SECRET")
    reference = {"name": "oberon-secrets", "key": "OBERON_SESSION_SECRET", "optional": False}
    assert secret["valueFrom"]["secretKeyRef"] == reference


def test_gateway_replicas_share_a_required_session_store() -> None:
    # Several gateway replicas with in-process sessions would each know only their own.
    deployment = by_kind("gateway.yaml")["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    store = next(item for item in container["env"] if item["name"] == "OBERON_SESSION_STORE")
    reference = {"name": "oberon-secrets", "key": "OBERON_SESSION_STORE", "optional": False}
    assert store["valueFrom"]["secretKeyRef"] == reference


def test_varnish_runs_the_vcl_of_infra_cdn_in_front_of_the_gateway() -> None:
    kinds = {document["kind"]: document for document in documents("varnish.yaml")}
    vcl = kinds["ConfigMap"]["data"]
    assert vcl["oberon.vcl"] == (ROOT / "infra" / "cdn" / "oberon.vcl").read_text()
    assert vcl["backend.vcl"] == BACKEND_VCL and '.host = "gateway";' in BACKEND_VCL
    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["varnishd", "-F"]
    assert "/etc/varnish/oberon.vcl" in container["command"]
    # The VCL as the ConfigMap holds it compiles (the gateway's host name resolved locally instead).
    with tempfile.TemporaryDirectory(prefix="oberon-k8s-vcl-") as name:
        folder = Path(name)
        folder.chmod(0o755)  # varnishd's unprivileged compiler reads the files (pytest's tmp_path is private)
        (folder / "oberon.vcl").write_text(vcl["oberon.vcl"])
        (folder / "backend.vcl").write_text(vcl["backend.vcl"].replace('"gateway"', '"127.0.0.1"'))
        check_vcl(folder)


def test_dockerfile_runs_the_services_as_the_manifests_do() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT (\[.*\])$", dockerfile, re.M)
    assert entrypoint is not None
    prefix = yaml.safe_load(entrypoint.group(1))
    assert command("renderer", SITE)[: len(prefix)] == prefix == ["python", "-m", "oberon", "--site", str(SITE_FILE)]
    assert f"WORKDIR {SITE_FILE.parent}" in dockerfile
    assert f"python -m oberon --site {SITE_FILE} build" in dockerfile, "the image carries the asset build"
    assert re.search(r"^USER 10001", dockerfile, re.M), "the manifests run as uid 10001"
    assert f"EXPOSE {PORT}" in dockerfile


def test_yaml_emitter_round_trips_what_the_manifests_use() -> None:
    value = {
        "a": "plain",
        "b": ["-m", "0.0.0.0", "8080", "true", "x: y", "$(VAR)", ""],
        "c": {"d": 1, "e": True, "f": None, "g": {}, "h": []},
        "i": "line one\n  indented\n\nlast\n",
        "j": [{"k": "v", "l": [{"m": 2}]}],
    }
    assert yaml.safe_load(dump(value)) == value
