# syntax=docker/dockerfile:1.7
# The emporium image: one static-ish binary on a distroless base (glibc, CA certificates, no shell).
#   docker build -t emporium:dev .
#   docker run --rm -p 8080:8080 emporium:dev          # one node on the embedded store
# Stage 1 computes a dependency recipe from the manifests only, stage 2 builds the dependencies
# from it (a layer that stays cached until Cargo.toml/Cargo.lock change), then the sources.

ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# checkov:skip=CKV_DOCKER_7:The base images are pinned release tags passed as ARGs (RUST_IMAGE, RUNTIME_IMAGE above)
FROM ${RUST_IMAGE} AS chef
# The image's toolchain is the one rust-toolchain.toml pins; this stops rustup fetching extra components.
ENV RUSTUP_TOOLCHAIN=1.95.0
RUN cargo install cargo-chef --version 0.1.78 --locked
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
# Dependencies only: cached while the manifests are unchanged.
RUN cargo chef cook --release --locked -p emporium-http --bin emporium --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked -p emporium-http --bin emporium \
 && install -D -m 0755 target/release/emporium /out/emporium \
 && install -d -m 0770 /out/data

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="emporium" \
      org.opencontainers.image.description="A storefront back end where every cart and order is an actor" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/emporium /usr/local/bin/emporium
# The data dir (embedded store, write-ahead log) belongs to the unprivileged user 65532.
COPY --from=builder --chown=65532:65532 /out/data /var/lib/emporium
ENV EMPORIUM_LISTEN=0.0.0.0:8080 \
    EMPORIUM_DATA_DIR=/var/lib/emporium \
    RUST_LOG=info
VOLUME ["/var/lib/emporium"]
EXPOSE 8080 7070
USER 65532:65532
# Liveness and readiness are the orchestrator's probes on /healthz and /readyz (there is no shell
# or HTTP client in the image to run a Docker HEALTHCHECK with).
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/emporium"]
CMD ["serve"]
