# syntax=docker/dockerfile:1
#
# The Fleuve image: the one `fleuve` binary (every service is a subcommand) on a distroless
# base, running as a non-root user. Kubernetes manifests: k8s/; operations: docs/OPERATIONS.md.
#
#   docker build -t fleuve .
#   docker run --rm fleuve --help
#   docker run --rm -p 8082:8082 -e FLEUVE_BROKERS=kafka:9092 \
#       -e FLEUVE_REGISTRY_URL=http://registry:8081 -e FLEUVE_INGEST_ADDR=0.0.0.0:8082 \
#       -e FLEUVE_JWT_HS256_SECRET=… fleuve ingest
#
# Build steps (stage `build`): the workspace is compiled in release with its Cargo.lock
# (`--locked`), nothing but crates from crates.io and the workspace's own sources. librdkafka
# is compiled from source by the `rdkafka` crate with its configure script (bash, make and a
# C compiler, all in the rust image); zlib is linked statically (LIBZ_SYS_STATIC), so the
# binary needs only glibc, libgcc_s and libm, which the distroless `cc` image has. The build
# downloads crates from crates.io: the builder needs network access (`docker build
# --network=host .` where the default build network is closed). BuildKit cache mounts keep
# the crates and the target folder between builds.
#
# Runtime (stage 2): gcr.io/distroless/cc-debian12, same Debian release (glibc 2.36) as the
# builder; no shell, no package manager; user 65532 (`nonroot`). The services write nothing
# to disk with the ScyllaDB store, so the root filesystem can be read-only.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
ENV LIBZ_SYS_STATIC=1 \
    CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_TERM_COLOR=never
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p fleuve \
    && install -D -m 0755 target/release/fleuve /out/fleuve \
    && /out/fleuve --version

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/fleuve /usr/local/bin/fleuve
USER 65532:65532
# query API, schema registry, ingest, processor ops (/metrics /healthz /readyz on each).
EXPOSE 8080 8081 8082 8083
ENTRYPOINT ["/usr/local/bin/fleuve"]
CMD ["--help"]
