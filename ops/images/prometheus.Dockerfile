# Prometheus from Debian's `prometheus` package, for hosts that reach a Debian archive but
# no image registry (the compose file's default is the upstream prom/prometheus image).
# Built by ops/compose-e2e.sh on the base that ops/images/debian-base.sh makes:
#
#   docker build -f ops/images/prometheus.Dockerfile --build-arg BASE_IMAGE=engs-debian:bookworm \
#       -t engs-prometheus:debian ops/images
#
# Same interface as prom/prometheus: the binary is the entrypoint (the compose file passes
# --config.file and --storage.tsdb.path), TSDB under /prometheus, wget for the healthcheck.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
ARG DEBIAN_FRONTEND=noninteractive

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# The package (not pinned: DL3008, the base's suite pins the release) brings the server
# and promtool; --no-install-recommends leaves out the node exporter. A policy-rc.d in the
# base keeps apt from starting the packaged service. /prometheus is owned by
# nobody (65534, the user of prom/prometheus), so a new named volume mounted there is
# writable by it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus wget \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o 65534 -g 65534 -m 0755 /prometheus \
    && prometheus --version

USER 65534:65534
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
