#!/usr/bin/env bash
# Builds a minimal Debian base image with Python 3 from Debian packages alone, for a host
# that reaches a Debian archive but no image registry (docs/deploy.md, "Without a
# registry"): the base of the CPU image and of the Prometheus image there.
#
#   ops/images/debian-base.sh [TAG]        # default engs-debian:<suite>
#
# debootstrap (--variant=minbase, plus ca-certificates, python3 and python3-venv) writes
# the root file system, `docker import` turns it into an image. apt inside the image uses the same mirror as the host's apt (the first Debian
# URI in /etc/apt/sources.list[.d]), or DEBIAN_MIRROR; the suite is the host's
# (VERSION_CODENAME) or DEBIAN_SUITE. An image that already has TAG is kept (a cache: the
# e2e script calls this on every run); REBUILD=1 builds it anew. Needs root (debootstrap).
set -euo pipefail

mirror() {
    if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
        echo "${DEBIAN_MIRROR}"
        return
    fi
    local uri
    uri=$(
        {
            grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
            grep -hE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
                sed -E 's/^deb (\[[^]]*\] )?//' | awk '{print $1}'
        } | grep -vE 'security|updates' | grep -E '/debian/?$' | head -n1
    )
    if [[ -z "${uri}" ]]; then
        echo "no Debian mirror in the host's apt sources: set DEBIAN_MIRROR" >&2
        return 1
    fi
    echo "${uri}"
}

suite="${DEBIAN_SUITE:-$(# shellcheck source=/dev/null
    . /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}"
tag="${1:-engs-debian:${suite}}"

if [[ -z "${REBUILD:-}" ]] && docker image inspect "${tag}" >/dev/null 2>&1; then
    echo "${tag}: cached ($(docker image inspect -f '{{.Created}}' "${tag}"))"
    exit 0
fi
command -v debootstrap >/dev/null || {
    echo "debootstrap is not installed (apt-get install debootstrap)" >&2
    exit 1
}

# With REBUILD=1 the image that had the tag is removed once the new one has it.
previous="$(docker image inspect -f '{{.Id}}' "${tag}" 2>/dev/null || true)"
url="$(mirror)"
root="$(mktemp -d /var/tmp/engs-debootstrap.XXXXXX)"
trap 'rm -rf --one-file-system "${root}"' EXIT

echo "${tag}: debootstrap ${suite} from ${url}"
debootstrap --variant=minbase --include=ca-certificates,python3,python3-venv "${suite}" "${root}" "${url}" \
    >"${root}.log" 2>&1 || {
    tail -n 20 "${root}.log" >&2
    rm -f "${root}.log"
    exit 1
}
rm -f "${root}.log"
# What a container does not need: the package caches and lists (apt-get update refetches
# them), documentation, and the host-specific files debootstrap copied in.
rm -rf "${root}"/var/cache/apt/archives/*.deb "${root}"/var/lib/apt/lists/* \
    "${root}"/usr/share/doc/* "${root}"/usr/share/man/* "${root}"/usr/share/info/*
: >"${root}/etc/hostname"
rm -f "${root}/etc/resolv.conf"
# Keep apt from starting daemons in a build (the convention of Debian's official images).
printf '#!/bin/sh\nexit 101\n' >"${root}/usr/sbin/policy-rc.d"
chmod 0755 "${root}/usr/sbin/policy-rc.d"

tar --numeric-owner -C "${root}" -c . |
    docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["bash"]' \
        --message "debootstrap --variant=minbase ${suite} (ops/images/debian-base.sh)" \
        - "${tag}" >/dev/null
if [[ -n "${previous}" && "${previous}" != "$(docker image inspect -f '{{.Id}}' "${tag}")" ]]; then
    docker image rm "${previous}" >/dev/null 2>&1 || true
fi
echo "${tag}: built ($(docker image inspect -f '{{.Size}}' "${tag}") bytes)"
