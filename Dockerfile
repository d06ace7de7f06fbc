# syntax=docker/dockerfile:1
#
# The Volley image: `volley` (coordinator, run submitter, built-in target)
# and `volley-worker`, on a root filesystem of three Debian packages, running
# as the non-root user 65532, with no shell.
#
#   docker build -t volley:0.1.0 .        (or: podman build -t volley:0.1.0 .)
#
# Three stages feed the image:
#   build    compiles the two binaries in a Rust image (stripped, in /out);
#   rootfs   assembles /rootfs in debian:bookworm-slim with image/rootfs.sh:
#            libc6, libgcc-s1 and ca-certificates unpacked (`apt-get download`,
#            `dpkg-deb -x`), the CA bundle, /etc/passwd with user 65532;
#   runtime  FROM scratch: /rootfs, the binaries, the examples. Nothing else.
#
# Why this base: the tests (charts/tests/test_image.py) build this same
# runtime stage without pulling any image, replacing `build` and `rootfs`
# with host directories (`podman build --build-context build=DIR
# --build-context rootfs=DIR --target runtime`): binaries built on the host,
# and the root filesystem made by the same image/rootfs.sh on a Debian host.
# A base image such as distroless or debian-slim could not be produced that
# way; FROM scratch plus packages can. It is also small (about 6 MB before
# the binaries) and has no shell: the chart runs the binaries directly.

ARG RUST_IMAGE=rust:1-bookworm
ARG DEBIAN_IMAGE=debian:bookworm-slim

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

# ---- rootfs: the runtime's files, from Debian packages -----------------------
# Same Debian release as the build stage, so the glibc the binaries were
# linked against is the one they run with.
FROM ${DEBIAN_IMAGE} AS rootfs
COPY image/rootfs.sh /usr/local/bin/volley-rootfs
RUN apt-get update -qq \
 && volley-rootfs /rootfs \
 && rm -rf /var/lib/apt/lists/*

# ---- runtime: the image -------------------------------------------------------
FROM scratch AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="volley" \
      org.opencontainers.image.description="Volley distributed load tester: coordinator, worker and built-in target" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=rootfs /rootfs/ /
# /report, the working directory, belongs to the user (a run writes there
# when no volume is mounted on it).
COPY --from=rootfs --chown=65532:65532 /rootfs/report/ /report/
COPY --from=build /out/volley /out/volley-worker /usr/local/bin/
COPY examples/ /usr/share/volley/examples/
ENV PATH=/usr/local/bin \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# A fixed numeric user, so that Kubernetes' runAsNonRoot can check it; the
# chart's securityContext uses the same UID and GID.
USER 65532:65532
WORKDIR /report
# The coordinator's gRPC port, the built-in target's HTTP port, metrics.
EXPOSE 7700 8080 9090
ENTRYPOINT ["volley"]
CMD ["--help"]
