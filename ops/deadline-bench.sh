#!/usr/bin/env bash
# Physics deadline misses of `engs up` on the host against the compose deployment, on the
# same host, runs interleaved (docs/deploy.md, "Deadline misses: containers against engs
# up"):
#
#   ops/deadline-bench.sh [-r ROUNDS] [-s SECONDS] [-w WEIGHT] [CONFIG...]
#
# CONFIG: up (`engs up` on the host), compose (physics, orchestrator, oracle from
# docker-compose.yml + docker-compose.cpu.yml + docker-compose.rootless.yml), compose-prom
# (the same plus Prometheus); default: all three. Each run waits 10 s, then counts
# engs_physics_deadline_misses_total / engs_physics_ticks_total (and the orchestrator's
# cycles) from the oracle over SECONDS (default 40); one line per run, then a summary per
# configuration (pooled and median). A run whose oracle does not answer within 60 s stops
# the script with that run's log.
#
# -w WEIGHT (cgroup v1, root): run `engs up` in a cpu cgroup of that weight and set Docker's
#   parent cgroup (/sys/fs/cgroup/cpu/docker) to it for the runs (restored after), so that
#   both deployments weigh the same against the machine's other work.
#
# Environment: ENGS_UP (the host's engs command, default .venv/bin/engs: it must run this
# checkout's code, since the supervisor starts its children with `python -m` from here),
# ENGS_BENCH_IMAGE (the CPU image the containers run, default engs:cpu: build it as
# docs/deploy.md says),
# PROM_IMAGE (default engs-prometheus:debian, from ops/images/prometheus.Dockerfile),
# COMPOSE (default: docker-compose beside the virtualenv). Ports 127.0.0.1:19411 (oracle)
# and free ones for the signal socket; the compose project is engs-bench-<pid>.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "${ROOT}"

rounds=3
seconds=40
weight=""
while getopts "r:s:w:" opt; do
    case "${opt}" in
        r) rounds="${OPTARG}" ;;
        s) seconds="${OPTARG}" ;;
        w) weight="${OPTARG}" ;;
        *)
            sed -n '2,25p' "$0" >&2
            exit 2
            ;;
    esac
done
shift $((OPTIND - 1))
configs=("$@")
((${#configs[@]})) || configs=(up compose compose-prom)

ENGS_UP="${ENGS_UP:-${ROOT}/.venv/bin/engs}"
IMAGE="${ENGS_BENCH_IMAGE:-engs:cpu}"
PROM_IMAGE="${PROM_IMAGE:-engs-prometheus:debian}"
COMPOSE="${COMPOSE:-${ROOT}/.venv/bin/docker-compose}"
PROJECT="engs-bench-$$"
METRICS="http://127.0.0.1:19411/metrics"
CG=/sys/fs/cgroup/cpu
WORK="$(mktemp -d /tmp/engs-bench.XXXXXX)"
UP_PID=""
DOCKER_WEIGHT=""

cat >"${WORK}/override.yml" <<EOF
services:
  physics:
    image: ${IMAGE}
  orchestrator:
    image: ${IMAGE}
    ports: !override
      - "127.0.0.1::7411"
  oracle:
    image: ${IMAGE}
    ports:
      - "127.0.0.1:19411:9411"
  prometheus:
    image: ${PROM_IMAGE}
EOF
compose() {
    ENGS_TOKEN=bench-token-0123456789abcdef GRAFANA_ADMIN_PASSWORD=unused \
        "${COMPOSE}" --project-name "${PROJECT}" --project-directory "${ROOT}" \
        -f docker-compose.yml -f docker-compose.cpu.yml -f docker-compose.rootless.yml \
        -f "${WORK}/override.yml" "$@"
}

stop_up() {
    if [[ -n "${UP_PID}" ]]; then
        kill -TERM "${UP_PID}" 2>/dev/null || true
        wait "${UP_PID}" 2>/dev/null || true
        UP_PID=""
    fi
}
cleanup() {
    stop_up
    compose down --volumes --timeout 5 >/dev/null 2>&1 || true
    if [[ -n "${DOCKER_WEIGHT}" ]]; then
        echo "${DOCKER_WEIGHT}" >"${CG}/docker/cpu.shares"
    fi
    rmdir "${CG}/engs-bench-$$" 2>/dev/null || true
    rm -rf "${WORK}"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -n "${weight}" ]]; then
    [[ -w "${CG}/docker/cpu.shares" ]] || {
        echo "-w needs cgroup v1's ${CG}/docker/cpu.shares, writable (root)" >&2
        exit 2
    }
    DOCKER_WEIGHT="$(cat "${CG}/docker/cpu.shares")"
    echo "${weight}" >"${CG}/docker/cpu.shares"
    mkdir -p "${CG}/engs-bench-$$"
    echo "${weight}" >"${CG}/engs-bench-$$/cpu.shares"
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# "ticks misses cycles cycle_misses" from the oracle's exposition.
counters() {
    python3 -c '
import re, sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
def total(name):
    return sum(float(m.group(2)) for m in re.finditer(rf"^{name}(\{{[^}}]*\}})? (\S+)$", text, re.M))
print(*(int(total(n)) for n in ("engs_physics_ticks_total", "engs_physics_deadline_misses_total",
      "engs_orchestrator_cycles_total", "engs_orchestrator_deadline_misses_total")))
' "${METRICS}"
}

measure() {
    local config="$1" a b load0 deadline=$((SECONDS + 60))
    until counters >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "${config}: no metrics on ${METRICS} after 60 s; its log:" >&2
            tail -n 20 "${WORK}/up.log" >&2
            exit 1
        fi
        sleep 1
    done
    sleep 10
    a="$(counters)"
    load0="$(cut -d' ' -f1 /proc/loadavg)"
    sleep "${seconds}"
    b="$(counters)"
    python3 -c '
import sys
a, b = (list(map(int, x.split())) for x in sys.argv[2:4])
t, m, c, cm = (y - x for x, y in zip(a, b))
print(f"{sys.argv[1]} ticks {t} misses {m} {100 * m / max(t, 1):.2f}% cycles {c} misses {cm} "
      f"{100 * cm / max(c, 1):.2f}% load {sys.argv[4]}")
' "${config}" "${a}" "${b}" "${load0}-$(cut -d' ' -f1 /proc/loadavg)" | tee -a "${WORK}/runs"
}

run() {
    local config="$1"
    case "${config}" in
        up)
            ENGS_CONFIG=ops/engs/engs.toml ENGS_INSTANCE="bench-$$" \
                ENGS_METRICS_ADDR=127.0.0.1:19411 ENGS_SIGNAL_ADDR="127.0.0.1:$(free_port)" \
                XDG_STATE_HOME="${WORK}/state" XDG_RUNTIME_DIR="${WORK}" bash -c '
                    if [[ -n "$1" ]]; then echo $$ >"$1/cgroup.procs"; fi
                    exec "$2" up' _ "${weight:+${CG}/engs-bench-$$}" "${ENGS_UP}" \
                >"${WORK}/up.log" 2>&1 &
            UP_PID=$!
            measure up
            stop_up
            ;;
        compose | compose-prom)
            local extra=()
            [[ "${config}" == compose-prom ]] && extra=(prometheus)
            compose up --detach --no-build --wait physics orchestrator oracle "${extra[@]}" \
                >"${WORK}/up.log" 2>&1 || {
                cat "${WORK}/up.log" >&2
                exit 1
            }
            measure "${config}"
            compose down --volumes --timeout 5 >/dev/null 2>&1
            ;;
        *)
            echo "unknown configuration ${config} (up, compose, compose-prom)" >&2
            exit 2
            ;;
    esac
}

echo "deadline-bench: ${rounds} rounds x ${configs[*]}, ${seconds} s each${weight:+, weight ${weight}}," \
    "$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= rounds; r++)); do
    for config in "${configs[@]}"; do
        run "${config}"
    done
done
python3 -c '
import statistics, sys
from collections import defaultdict
runs = defaultdict(list)
for line in open(sys.argv[1]):
    f = line.split()
    runs[f[0]].append((int(f[2]), int(f[4])))
for config, rs in runs.items():
    ticks, misses = sum(t for t, _ in rs), sum(m for _, m in rs)
    med = statistics.median(100 * m / max(t, 1) for t, m in rs)
    print(f"summary {config}: {misses}/{ticks} ticks missed = {100 * misses / max(ticks, 1):.2f}% "
          f"pooled, median {med:.2f}% over {len(rs)} runs")
' "${WORK}/runs"
