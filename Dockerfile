# syntax=docker/dockerfile:1
#
# The Volley image: `volley` (coordinator, run submitter, built-in target)
# and `volley-worker`, on a slim Debian, running as a non-root user.
#
#   docker build -t volley:0.1.0 .
#
# The Helm chart (charts/volley) runs it with a read-only root filesystem and
# needs /bin/sh in it (the run Job prints report.md after `volley run`).

ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- build: compile the two binaries with cargo -----------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Everything the workspace needs (see .dockerignore for what is left out).
COPY . .
# The registry and target caches speed up rebuilds (BuildKit); the binaries
# are copied out of the cached target directory before the step ends, and
# stripped (the release profile keeps line tables for profiling; the image
# does not need them).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin volley --bin volley-worker \
 && mkdir -p /out \
 && cp target/release/volley target/release/volley-worker /out/ \
 && strip /out/volley /out/volley-worker

# ---- runtime: a slim base, non-root ------------------------------------------
FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="volley" \
      org.opencontainers.image.description="Volley distributed load tester: coordinator, worker and built-in target" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric user, so that Kubernetes' runAsNonRoot can check it; the
# chart's securityContext uses the same UID and GID.
RUN groupadd --system --gid 65532 volley \
 && useradd --system --uid 65532 --gid 65532 --home-dir /report --no-create-home \
            --shell /usr/sbin/nologin volley \
 && mkdir -p /report \
 && chown 65532:65532 /report
COPY --from=build /out/volley /out/volley-worker /usr/local/bin/
COPY examples/ /usr/share/volley/examples/
USER 65532:65532
WORKDIR /report
# The coordinator's gRPC port, the built-in target's HTTP port, metrics.
EXPOSE 7700 8080 9090
ENTRYPOINT ["volley"]
CMD ["--help"]
