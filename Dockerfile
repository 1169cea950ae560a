# syntax=docker/dockerfile:1
# awfdrs: one binary that runs every worker (`awfdrs up`), one worker
# (`awfdrs worker <name>`), the migrations (`awfdrs migrate`) and the operator
# CLI. Build: docker build -t awfdrs .   (compose.yaml and deploy/k8s use it)

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and target dir between builds; the binary is
# copied out of the cached target dir in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --bin awfdrs \
    && install -D -m 0755 target/release/awfdrs /out/awfdrs

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 awfdrs \
    && useradd --system --uid 10001 --gid awfdrs --no-create-home --home-dir /nonexistent awfdrs
COPY --from=builder /out/awfdrs /usr/local/bin/awfdrs
# Default config and rules, read relative to the working directory.
WORKDIR /app
COPY config/ /app/config/
USER 10001:10001
ENV LOG_FORMAT=json \
    AWFDRS__TELEMETRY__METRICS_ADDR=0.0.0.0:9464 \
    AWFDRS_HTTP_ADDR=0.0.0.0:8080
# 8080: the API (gateway, `up`); 9464: /metrics of the other workers.
EXPOSE 8080 9464
# SIGTERM (the default stop signal) drains in-flight work, then exits 0.
ENTRYPOINT ["/usr/local/bin/awfdrs"]
CMD ["up", "--http", "0.0.0.0:8080"]
