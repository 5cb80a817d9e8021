# syntax=docker/dockerfile:1
#
# The example services, for docker-compose.yml: one build stage compiles all
# four binaries once, and each service is a small runtime image of its own:
#
#   docker build --target inventory -t otelwire-inventory .
#   docker build --target pricing -t otelwire-pricing .
#   docker build --target orders-api -t otelwire-orders-api .
#   docker build --target health-checker -t otelwire-health-checker .

# ---- build -----------------------------------------------------------------
FROM rust:1.95-slim-trixie AS build
WORKDIR /src
COPY . .
# BuildKit caches: the registry and the target directory survive between
# builds, so a rebuild after an edit recompiles only what changed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p inventory -p pricing -p orders-api -p health-checker \
 && mkdir -p /out \
 && cp target/release/inventory target/release/pricing target/release/orders-api \
       target/release/health-checker /out/

# ---- runtime ---------------------------------------------------------------
FROM debian:trixie-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10002 --no-create-home --shell /usr/sbin/nologin app
USER 10002
# otelwire writes JSON lines to stdout when it is not a terminal; telemetry
# goes to OTEL_EXPORTER_OTLP_ENDPOINT (set in docker-compose.yml).
ENV RUST_LOG=info

FROM runtime AS inventory
COPY --from=build /out/inventory /usr/local/bin/inventory
EXPOSE 8081
ENTRYPOINT ["/usr/local/bin/inventory"]

FROM runtime AS pricing
COPY --from=build /out/pricing /usr/local/bin/pricing
EXPOSE 50051
ENTRYPOINT ["/usr/local/bin/pricing"]

FROM runtime AS orders-api
COPY --from=build /out/orders-api /usr/local/bin/orders-api
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/orders-api"]

FROM runtime AS health-checker
COPY --from=build /out/health-checker /usr/local/bin/health-checker
EXPOSE 8082
ENTRYPOINT ["/usr/local/bin/health-checker"]
