# syntax=docker/dockerfile:1
# The local server as a container image: all four routers in one process.
#   docker build --build-arg GIT_SHA=$(git rev-parse HEAD) -t task-api .
#   docker run -p 8080:8080 -e DATABASE_URL=… -e JWT_SECRET=… -e PASSWORD_PEPPER=… task-api
# Production mode by default: the secrets are required (the process says which is missing).

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# No .git in the build context: the commit comes in as a build argument for /version.
ARG GIT_SHA=unknown
ENV GIT_SHA=${GIT_SHA}
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p local-server \
    && cp target/release/local-server /usr/local/bin/local-server

# No packages: TLS to the database uses rustls with the Mozilla roots built into the binary
# (webpki-roots), so the image needs no system certificate store.
FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /app --create-home app \
    && mkdir -p /app/data && chown app:app /app/data
COPY --from=build /usr/local/bin/local-server /usr/local/bin/local-server
WORKDIR /app
USER 10001:10001
ENV APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["local-server", "healthcheck"]
ENTRYPOINT ["local-server"]
CMD ["serve"]
