#!/usr/bin/env bash
# Where the physics' missed deadlines come from (issue 18; docs/benchmarks.md, "Deadline
# misses, attributed"):
#
#   ops/deadline-attribution.sh [-s SECONDS] [-b BACKEND] [-p] [-f PRIO] [-- ENGS_UP_ARGS...]
#
# Runs `engs up --fresh` for SECONDS (default 60) with ENGS_MISS_TRACE set, so the physics
# keeps one attributed row per missed deadline (services/physics/misses.py: GC, the
# deadline reporter holding the GIL, descheduled, page fault, slow step, torn state read,
# other), then prints `engs status`'s deadline figures and the trace's summary. -b sets
# ENGS_BACKEND (default auto); -p gives the physics the last CPU to itself ([physics]
# cpu_affinity: the supervisor keeps the orchestrator and oracle on the others), to
# measure what a core of its own buys; -f PRIO runs the physics loop SCHED_FIFO at PRIO
# ([physics] sched_fifo_priority; needs CAP_SYS_NICE, else the loop logs and counts the
# failure and runs as before). Everything goes under
# OUT (default ./deadline-attribution-out): up.log, status.json, misses.jsonl.
#
# Environment: ENGS_UP (default .venv/bin/engs), OUT. Ports: free ones on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
backend=auto
pin=0
fifo=""
while getopts "s:b:pf:" opt; do
    case "${opt}" in
        s) seconds="${OPTARG}" ;;
        b) backend="${OPTARG}" ;;
        p) pin=1 ;;
        f) fifo="${OPTARG}" ;;
        *) sed -n '2,18p' "$0" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))

ENGS_UP=${ENGS_UP:-.venv/bin/engs}
OUT=${OUT:-deadline-attribution-out}
mkdir -p "${OUT}"
instance="attribution-$$"
python=$(dirname "${ENGS_UP}")/python
free_port() {
    "${python}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if ((pin)) || [[ -n "${fifo}" ]]; then
    cfg="${OUT}/physics.toml"
    echo '[physics]' >"${cfg}"
    if ((pin)); then
        last=$(($(nproc) - 1))
        if ((last < 1)); then
            echo "-p needs at least 2 CPUs" >&2
            exit 2
        fi
        printf 'cpu_affinity = [%d]\n' "${last}" >>"${cfg}"
    fi
    if [[ -n "${fifo}" ]]; then
        printf 'sched_fifo_priority = %d\n' "${fifo}" >>"${cfg}"
    fi
    set -- --config "${cfg}" "$@"
fi

rm -f "${OUT}/misses.jsonl"
ENGS_MISS_TRACE="${OUT}/misses.jsonl" ENGS_BACKEND="${backend}" ENGS_INSTANCE="${instance}" \
    ENGS_SIGNAL_ADDR="127.0.0.1:$(free_port)" ENGS_METRICS_ADDR="127.0.0.1:$(free_port)" \
    "${ENGS_UP}" up --fresh "$@" >"${OUT}/up.log" 2>&1 &
up_pid=$!
sleep "${seconds}"
if ! kill -0 "${up_pid}" 2>/dev/null; then
    tail -20 "${OUT}/up.log" >&2
    echo "engs up exited early" >&2
    exit 1
fi
"${ENGS_UP}" status --json --instance "${instance}" >"${OUT}/status.json"
kill -INT "${up_pid}"
wait "${up_pid}" || true

"${python}" - "${OUT}/status.json" "${OUT}/misses.jsonl" <<'EOF'
import json
import sys

d = json.load(open(sys.argv[1]))["deadlines"]
lines = open(sys.argv[2]).read().splitlines()
s = json.loads(lines[-1])["summary"]
print(
    f"engs status: {d['ticks_total']} ticks, {d['misses_total']} missed "
    f"({100 * d['misses_total'] / max(d['ticks_total'], 1):.3f} %), tick p99 "
    f"{d['tick_p99_s'] * 1e3:.3f} ms, rate {d['achieved_hz']:.1f} Hz"
)
print(
    f"trace: {s['ticks']} ticks, {s['miss_events']} missing ticks, {s['deadlines_missed']} "
    f"deadlines ({100 * s['miss_ratio']:.3f} %); causes: "
    + ", ".join(f"{k} {v}" for k, v in s["causes"].items() if v)
)
EOF
grep -m1 "backend" "${OUT}/up.log" || true
