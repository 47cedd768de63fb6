#!/usr/bin/env bash
# Builds every wheel the ENGS image installs into a directory, inside a container of the
# image's base (so the wheels match its Python and platform), with pip trusting the host's
# CA bundle: the way to build the image behind a TLS-intercepting proxy or with no
# package index at all (docs/deploy.md, "Behind a proxy or air-gapped").
#
#   ops/images/wheelhouse.sh BASE_IMAGE OUT_DIR [gpu|cpu]
#
# OUT_DIR then holds the project's wheel, its dependencies' wheels (with CuPy for gpu) and
# the build backend's (setuptools, wheel), enough for `pip install --no-index
# --find-links OUT_DIR`: the Dockerfile does that given the build args PIP_NO_INDEX=1 and
# PIP_FIND_LINKS=<URL of OUT_DIR> (ops/compose-e2e.sh serves it on loopback). The CA
# bundle is PIP_CERT_FILE (default: the host's system bundle), mounted read-only and given
# to pip as PIP_CERT, which pip's build-isolation subprocess inherits (--cert does not
# reach it). A base without python3 gets it from apt first.
set -euo pipefail

if (($# < 2)); then
    sed -n '2,17p' "$0" >&2
    exit 2
fi
base="$1"
out="$2"
target="${3:-gpu}"
cert="${PIP_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
case "${target}" in
    gpu) spec='/src[gpu]' ;;
    cpu) spec='/src' ;;
    *)
        echo "target must be gpu or cpu, not '${target}'" >&2
        exit 2
        ;;
esac
mkdir -p "${out}"
out="$(cd "${out}" && pwd)"

# The sources are copied out of the read-only mount first: setuptools writes its build
# and egg-info directories next to pyproject.toml.
docker run --rm --network bridge \
    -v "${root}:/repo:ro" -v "${out}:/out" -v "${cert}:/etc/engs-ca.crt:ro" \
    -e PIP_CERT=/etc/engs-ca.crt -e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_NO_CACHE_DIR=1 \
    -e SPEC="${spec}" -e OWNER="$(id -u):$(id -g)" \
    "${base}" bash -euo pipefail -c '
        if ! command -v python3 >/dev/null || ! python3 -m venv --help >/dev/null 2>&1; then
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                python3 python3-venv >/dev/null
        fi
        mkdir /src
        cp -a /repo/pyproject.toml /repo/README.md /repo/engs /repo/shared /repo/services /src/
        python3 -m venv /tmp/venv
        /tmp/venv/bin/pip wheel -q --wheel-dir /out "${SPEC}" "setuptools>=68" wheel
        chown -R "${OWNER}" /out
    '
echo "${out}: $(find "${out}" -name '*.whl' | wc -l) wheels for ${target} on ${base}"
