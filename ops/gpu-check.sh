#!/usr/bin/env bash
# The GPU path measured, in one run (issue 18). On a host with an NVIDIA GPU:
#
#   1. a virtualenv with the project and its gpu extra (CuPy), from the package index or,
#      offline, from a folder of wheels (WHEELHOUSE=dir: pip --no-index --find-links);
#   2. the CuPy-vs-NumPy tests (pytest -m gpu: the fused kernels against the NumPy twin);
#   3. engs bench physics --backend cupy at 64x64, 256x256 and 6^9 (JSON kept);
#   4. 60 s of `engs up` on the GPU (ENGS_BACKEND=cupy), then `engs status --json`:
#      achieved tick rate, tick p99 and deadline misses.
#
# Prints one summary line last; exit 0 only when every step ran (the figures, the deadline
# health verdict among them, are reported for docs/benchmarks.md, not judged here). Everything it writes
# goes under OUT (default ./gpu-check-out): pip.log, pytest.log, bench.json, up.log,
# status.json, summary.txt. The whole run is bounded (about 10 minutes at most).
#
#   ops/gpu-check.sh                         # online
#   WHEELHOUSE=wheels ops/gpu-check.sh       # offline: wheels for numpy, cupy-cuda12x, ...
#   UP_SECONDS=60 SHAPES="64x64 256x256 6^9" OUT=/tmp/gc ops/gpu-check.sh
#   BACKEND=numpy EXTRAS=dev SHAPES=64x64 UP_SECONDS=10 ops/gpu-check.sh
#       # a rehearsal of the plumbing on a CPU host (no GPU needed; the gpu tests skip)
#
# Make a wheelhouse on a machine with an index (same Python and platform as the GPU host):
#   pip wheel --wheel-dir wheels '.[gpu,dev]'
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${OUT:-gpu-check-out}
VENV=${VENV:-.venv-gpu}
UP_SECONDS=${UP_SECONDS:-60}
SHAPES=${SHAPES:-"64x64 256x256 6^9"}
BACKEND=${BACKEND:-cupy}
EXTRAS=${EXTRAS:-gpu,dev}
INSTANCE=gpucheck-$$
mkdir -p "$OUT"
summary=()
status=0
up_pid=

step() { printf '\n== %s ==\n' "$*" >&2; }
fail() { summary+=("$1=FAIL"); status=1; }

cleanup() {
    if [[ -n "$up_pid" ]] && kill -0 "$up_pid" 2>/dev/null; then
        kill -INT "$up_pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$up_pid" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$up_pid" 2>/dev/null || true
    fi
}
trap cleanup EXIT

if [[ "$BACKEND" != cupy ]]; then
    echo "rehearsal on the $BACKEND backend (no GPU used)" >"$OUT/gpus.txt"
elif ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >"$OUT/gpus.txt" 2>&1; then
    echo "gpu-check: no NVIDIA GPU here (nvidia-smi -L failed); nothing to measure" >&2
    echo "gpu-check: SKIPPED no GPU" | tee "$OUT/summary.txt"
    exit 2
fi
gpu=$(head -1 "$OUT/gpus.txt")

step "virtualenv $VENV with the extras $EXTRAS"
pip_args=(-q)
if [[ -n "${WHEELHOUSE:-}" ]]; then
    pip_args+=(--no-index --find-links "$WHEELHOUSE")
fi
if ! { python3 -m venv "$VENV" \
    && "$VENV/bin/pip" install "${pip_args[@]}" -e ".[$EXTRAS]"; } >"$OUT/pip.log" 2>&1; then
    tail -20 "$OUT/pip.log" >&2
    echo "gpu-check: FAIL install (see $OUT/pip.log)" | tee "$OUT/summary.txt"
    exit 1
fi
engs=("$VENV/bin/engs")

step "CuPy vs NumPy (pytest -m gpu)"
if timeout 240 "$VENV/bin/python" -m pytest -q -m gpu -p no:cacheprovider \
    >"$OUT/pytest.log" 2>&1; then
    summary+=("tests=$(tail -1 "$OUT/pytest.log" | tr -s ' ' | tr ' ' '_')")
else
    tail -30 "$OUT/pytest.log" >&2
    fail tests
fi

step "engs bench physics --backend $BACKEND ($SHAPES)"
bench_args=(bench physics --backend "$BACKEND" --json --ticks 300 --max-seconds 5)
for s in $SHAPES; do bench_args+=(--shape "$s"); done
if timeout 240 "${engs[@]}" "${bench_args[@]}" >"$OUT/bench.json" 2>"$OUT/bench.log"; then
    summary+=("bench=$("$VENV/bin/python" - "$OUT/bench.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
rows = [row for run in r["runs"] for row in run["shapes"]]
print(",".join(
    f"{row['shape']}:skipped" if "skipped" in row else
    f"{row['shape']}:p50={row['tick_p50_s'] * 1e3:.3f}ms/p99={row['tick_p99_s'] * 1e3:.3f}ms"
    f"/fused={row.get('fused_fraction', float('nan')):.2f}"
    for row in rows
))
EOF
)")
else
    tail -20 "$OUT/bench.log" >&2
    fail bench
fi

step "engs up on the $BACKEND backend for ${UP_SECONDS} s"
free_port() {
    "$VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
ENGS_BACKEND=$BACKEND ENGS_INSTANCE=$INSTANCE ENGS_SIGNAL_ADDR=127.0.0.1:$(free_port) \
    ENGS_METRICS_ADDR=127.0.0.1:$(free_port) "${engs[@]}" up --fresh >"$OUT/up.log" 2>&1 &
up_pid=$!
sleep "$UP_SECONDS"
if kill -0 "$up_pid" 2>/dev/null \
    && "${engs[@]}" status --json --instance "$INSTANCE" >"$OUT/status.json" 2>>"$OUT/up.log"; then
    summary+=("up=$("$VENV/bin/python" - "$OUT/status.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))["deadlines"]
ticks, misses = d["ticks_total"] or 0, d["misses_total"] or 0
p99 = d["tick_p99_s"]
rate = d["achieved_hz"]
print(
    f"{d['status']}:rate={'-' if rate is None else f'{rate:.1f}'}Hz/tick_p99="
    f"{'-' if p99 is None else f'{p99 * 1e3:.3f}ms'}/misses={misses}of{ticks}"
    f"({100 * misses / max(ticks, 1):.3f}%)"
)
EOF
)")
    grep -m1 -i "backend" "$OUT/up.log" >&2 || true
else
    tail -30 "$OUT/up.log" >&2
    fail up
fi
cleanup
up_pid=

line="gpu-check: $([[ $status == 0 ]] && echo PASS || echo FAIL) [$gpu] ${summary[*]}"
echo "$line" | tee "$OUT/summary.txt"
exit "$status"
