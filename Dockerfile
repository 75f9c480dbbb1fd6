# syntax=docker/dockerfile:1
#
# RippleKV in a container: a build stage with the Rust toolchain, then a small Debian
# runtime with the one binary, run as a non-root user with its data in /data.
#
#   docker build -t ripplekv .
#   docker run -d --name ripplekv -p 3000:3000 -v ripplekv-data:/data --stop-timeout 30 ripplekv
#   docker exec ripplekv cat /data/api-key      # the key generated at first start
#
# See docs/deploy.md.

# The workspace's rust-version (Cargo.toml); any later 1.x works too.
ARG RUST_VERSION=1.94

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY . .
# The cargo registry and the target directory are cache mounts, so a rebuild after a
# code change neither downloads nor recompiles the dependencies. The binary is copied
# out of the cached target directory in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ripplekv \
    && install -m 0755 target/release/ripplekv /usr/local/bin/ripplekv

FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 ripplekv \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin ripplekv \
    && install -d -o 10001 -g 10001 -m 0700 /data
COPY --from=build /usr/local/bin/ripplekv /usr/local/bin/ripplekv

ENV RIPPLEKV_DATA_DIR=/data \
    RIPPLEKV_LISTEN=0.0.0.0:3000
USER 10001:10001
WORKDIR /data
VOLUME /data
EXPOSE 3000
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["ripplekv", "health", "--url", "http://127.0.0.1:3000"]
ENTRYPOINT ["ripplekv"]
CMD ["serve"]
