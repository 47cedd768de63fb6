# ENGS image: one image for `engs up` and for each service under docker compose
# (docs/deploy.md).
#
# Base: the CUDA 12 *runtime* image. It carries the CUDA libraries CuPy loads, NVRTC among
# them: CuPy compiles its kernels at run time, so libnvrtc must be present (checked below,
# the build fails without it). Ubuntu 24.04's Python is 3.12 (the project needs >= 3.11).
# The same image runs CPU-only: without a GPU reserved for the container the physics'
# `auto` backend finds no usable device, falls back to NumPy and logs why.
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-runtime-ubuntu24.04
FROM ${CUDA_IMAGE}
ARG CUDA_IMAGE

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# Numeric ids: docker compose runs every ENGS service as this user (the region is mode 0600,
# so all three must be the same uid), and Kubernetes' runAsNonRoot can verify a number.
ARG ENGS_UID=10001
ARG DEBIAN_FRONTEND=noninteractive

# Distribution packages are not version-pinned (DL3008): the CUDA base tag pins the
# release, and pinning Ubuntu's patch versions breaks the build whenever the archive
# moves on, without making it more reproducible than the base tag already is.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && if ! ldconfig -p | grep -q 'libnvrtc\.so\.12'; then \
        echo "libnvrtc.so.12 not found in ${CUDA_IMAGE}: CuPy cannot compile kernels" >&2; \
        exit 1; \
    fi \
    && groupadd --system --gid "${ENGS_UID}" engs \
    && useradd --system --uid "${ENGS_UID}" --gid "${ENGS_UID}" --home-dir /var/lib/engs \
        --no-create-home --shell /usr/sbin/nologin engs \
    && install -d -o "${ENGS_UID}" -g "${ENGS_UID}" -m 0750 /var/lib/engs /var/lib/engs/state

# HOME: CuPy's kernel cache (~/.cupy). XDG_STATE_HOME: the orchestrator's checkpoints and
# session logs (`$XDG_STATE_HOME/engs/<instance>`); compose mounts a named volume there,
# and a new named volume takes this directory's owner, so the non-root user can write it.
ENV VIRTUAL_ENV=/opt/engs \
    PATH=/opt/engs/bin:${PATH} \
    HOME=/var/lib/engs \
    XDG_STATE_HOME=/var/lib/engs/state \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /usr/src/engs
COPY pyproject.toml README.md ./
COPY shared ./shared
COPY services ./services
# Every dependency ships a manylinux wheel for CPython 3.12 (x86-64 and aarch64): no
# compiler in the image. This installs the local project, so the versions are the
# ranges its pyproject.toml declares (DL3013 asks for pins on named packages).
# hadolint ignore=DL3013
RUN python3 -m venv "${VIRTUAL_ENV}" \
    && pip install ".[gpu]" \
    && engs --help >/dev/null

USER ${ENGS_UID}:${ENGS_UID}
WORKDIR /var/lib/engs

# 7411: the signal socket (orchestrator). 9411: /metrics and /healthz (oracle).
EXPOSE 7411 9411

# The oracle's /healthz (docs/oracle.md): 200 while it is attached to the live region and
# its poll loop runs. No curl in the image: the standard library does it. The port follows
# ENGS_METRICS_ADDR; compose overrides this check for the physics and the orchestrator.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os,sys,urllib.request as u; p=os.environ.get('ENGS_METRICS_ADDR','127.0.0.1:9411').rpartition(':')[2]; sys.exit(u.urlopen(f'http://127.0.0.1:{p}/healthz', timeout=2).status != 200)"]

ENTRYPOINT ["engs"]
CMD ["up"]
