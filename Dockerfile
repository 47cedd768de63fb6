# ENGS image: one image for `engs up` and for each service under docker compose
# (docs/deploy.md, "The image"). One file, two builds:
#
#   GPU (the default): BASE_IMAGE is the CUDA 12 *runtime* image and ENGS_TARGET=gpu. It
#     carries the CUDA libraries CuPy loads, NVRTC among them: CuPy compiles its kernels at
#     run time, so libnvrtc must be present (checked below: the build fails without it).
#     Ubuntu 24.04's Python is 3.12 (the project needs >= 3.11).
#   CPU: --build-arg ENGS_TARGET=cpu --build-arg BASE_IMAGE=debian:bookworm-slim (or any
#     Debian/Ubuntu image whose python3 is >= 3.11, e.g. one made by
#     ops/images/debian-base.sh without a registry). No CuPy, no NVRTC check; the physics
#     runs on the fused CPU kernels (numba) or NumPy. docker-compose.cpu.yml selects this
#     build.
#
# The GPU image also runs without a GPU (the physics' `auto` backend falls back to the
# fused CPU kernels or NumPy and logs why); the CPU build is ~2 GB smaller and needs no
# NVIDIA registry.
#
# Behind a proxy or air-gapped (docs/deploy.md, "Behind a proxy or air-gapped"): pip takes
# its index, links and trust from the build args below (unset unless given), e.g. the
# wheels ops/images/wheelhouse.sh built with the host's CA bundle, served on loopback:
#   docker build --network host --build-arg PIP_NO_INDEX=1 \
#       --build-arg PIP_FIND_LINKS=http://127.0.0.1:8765/ .
# Works with the classic builder and with BuildKit alike (no RUN --mount).
ARG BASE_IMAGE=nvidia/cuda:12.6.3-runtime-ubuntu24.04
FROM ${BASE_IMAGE}
ARG BASE_IMAGE
# gpu: pip install ".[gpu]" (CuPy) and the NVRTC check; cpu: pip install "." only.
ARG ENGS_TARGET=gpu

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Numeric ids: docker compose runs every ENGS service as this user (the region is mode 0600,
# so all three must be the same uid), and Kubernetes' runAsNonRoot can verify a number.
ARG ENGS_UID=10001
ARG DEBIAN_FRONTEND=noninteractive

# Python from the distribution, unless the base already has it with venv (the image
# ops/images/debian-base.sh builds does: then no package index is needed here at all).
# Distribution packages are not version-pinned (DL3008): the base tag pins the release,
# and pinning the distribution's patch versions breaks the build whenever the archive
# moves on, without making it more reproducible than the base tag already is.
# hadolint ignore=DL3008
RUN if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -m ensurepip --version >/dev/null 2>&1; then \
        apt-get update \
        && apt-get install -y --no-install-recommends python3 python3-venv \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && case "${ENGS_TARGET}" in \
        gpu) if ! ldconfig -p | grep -q 'libnvrtc\.so\.12'; then \
                echo "libnvrtc.so.12 not found in ${BASE_IMAGE}: CuPy cannot compile kernels" >&2; \
                exit 1; \
            fi ;; \
        cpu) ;; \
        *) echo "ENGS_TARGET must be gpu or cpu, not '${ENGS_TARGET}'" >&2; exit 1 ;; \
    esac \
    && groupadd --system --gid "${ENGS_UID}" engs \
    && useradd --system --uid "${ENGS_UID}" --gid "${ENGS_UID}" --home-dir /var/lib/engs \
        --no-create-home --shell /usr/sbin/nologin engs \
    && install -d -o "${ENGS_UID}" -g "${ENGS_UID}" -m 0750 /var/lib/engs /var/lib/engs/state

# HOME: CuPy's kernel cache (~/.cupy). NUMBA_CACHE_DIR: the fused CPU kernels' machine
# code, compiled once below for the build host's CPU; a host with another CPU compiles
# its own there on first start (~7 s; docs/physics.md, "The fused CPU backend").
# XDG_STATE_HOME: the orchestrator's checkpoints and
# session logs (`$XDG_STATE_HOME/engs/<instance>`); compose mounts a named volume there,
# and a new named volume takes this directory's owner, so the non-root user can write it.
ENV VIRTUAL_ENV=/opt/engs \
    PATH=/opt/engs/bin:${PATH} \
    HOME=/var/lib/engs \
    NUMBA_CACHE_DIR=/var/lib/engs/.numba \
    XDG_STATE_HOME=/var/lib/engs/state \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /usr/src/engs
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
# engs/ is the one installed package: links to shared/ and services/ (copied as links)
COPY engs ./engs
# pip's settings for a build behind a proxy, from a private index or from a wheelhouse;
# an ARG without a default is not in the environment unless given. (http_proxy,
# https_proxy and no_proxy are Docker's predefined build args.)
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
ARG PIP_FIND_LINKS
ARG PIP_NO_INDEX
ARG PIP_TRUSTED_HOST
# Every dependency ships a manylinux wheel for CPython 3.11 and 3.12 (x86-64 and
# aarch64): no compiler in the image. This installs the local project, so the versions
# are the ranges its pyproject.toml declares (DL3013 asks for pins on named packages).
# hadolint ignore=DL3013
RUN python3 -m venv "${VIRTUAL_ENV}" \
    && if [ "${ENGS_TARGET}" = gpu ]; then pip install ".[gpu]"; else pip install .; fi \
    && engs --help >/dev/null

USER ${ENGS_UID}:${ENGS_UID}
WORKDIR /var/lib/engs
# Compile the fused CPU kernels into NUMBA_CACHE_DIR, so a start on this CPU loads them.
RUN python -c "from engs.services.physics.cpu_kernels import self_test; self_test()"

# 7411: the signal socket (orchestrator). 9411: /metrics and /healthz (oracle).
EXPOSE 7411 9411

# The oracle's /healthz (docs/oracle.md): 200 while it is attached to the live region and
# its poll loop runs. No curl in the image: the standard library does it, at nice 19 so
# that it yields to the 1 kHz loop. The port follows ENGS_METRICS_ADDR; compose overrides
# this check for the physics and the orchestrator.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["nice", "-n", "19", "python", "-c", "import os,sys,urllib.request as u; p=os.environ.get('ENGS_METRICS_ADDR','127.0.0.1:9411').rpartition(':')[2]; sys.exit(u.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=2).status != 200)"]

ENTRYPOINT ["engs"]
CMD ["up"]
