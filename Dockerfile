# syntax=docker/dockerfile:1
# The local server as a container image: all four routers in one process.
#   docker build --build-arg GIT_SHA=$(git rev-parse HEAD) -t task-api .
#   docker run -p 8080:8080 -e DATABASE_URL=… -e JWT_SECRET=… -e PASSWORD_PEPPER=… task-api
# Production mode by default: the secrets are required (the process says which is missing).

FROM rust:1.95-slim-bookworm AS build
# The binary is linked statically against musl, so the runtime stage is `scratch`: no shell,
# no package manager, no libraries, nothing but the server. musl-tools is the C compiler for
# the crates with C inside (the bundled SQLite, ring, mimalloc). The target follows the build
# machine (x86_64 or aarch64).
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools=1.2.3-* \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add "$(uname -m)-unknown-linux-musl"
WORKDIR /src
# No .git in the build context: the commit comes in as a build argument for /version.
ARG GIT_SHA=unknown
ENV GIT_SHA=${GIT_SHA}
COPY . .
# /out is the runtime stage's file system: the binary and a /tmp; /app is its working
# directory (for SQLite on a volume), owned by the server's user once copied.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    target="$(uname -m)-unknown-linux-musl" \
    && cargo build --release --locked --target "$target" -p local-server \
    && mkdir -p /out/usr/local/bin /out/tmp /app/data \
    && cp "target/$target/release/local-server" /out/usr/local/bin/local-server \
    && chmod 1777 /out/tmp

# No packages: TLS to the database uses rustls with the Mozilla roots built into the binary
# (webpki-roots), and musl's resolver reads the /etc/hosts and /etc/resolv.conf the container
# runtime provides.
FROM scratch
COPY --from=build /out/ /
COPY --from=build --chown=10001:10001 /app /app
WORKDIR /app
USER 10001:10001
ENV APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    LOG_FORMAT=json \
    PATH=/usr/local/bin
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/local-server", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/local-server"]
CMD ["serve"]
