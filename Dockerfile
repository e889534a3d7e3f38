# syntax=docker/dockerfile:1
#
# One image with Agora's three deployables: auth-service, post-service and
# gateway. docker-compose.yml picks the binary with `command:`; elsewhere:
#   docker build -t agora .
#   docker run --rm agora auth-service --help

# --- The GraphiQL playground's npm packages --------------------------------
# The gateway embeds them (gateway/build.rs). `npm ci` runs here, with the
# Node.js version package.json asks for (Debian bookworm's own is older), and
# only package.json / package-lock.json in the context, so this layer is
# rebuilt only when the lock file changes.
FROM node:22-bookworm-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# --- Build -----------------------------------------------------------------
FROM rust:1-bookworm AS build
# rdkafka-sys compiles the bundled librdkafka with its own ./configure script
# and make (no cmake): a C/C++ toolchain, perl and python3 for the configure
# scripts, pkg-config and zlib's headers for librdkafka's compression.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        build-essential \
        perl \
        pkg-config \
        python3 \
        zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Installed at the versions package-lock.json pins, so gateway/build.rs finds
# them up to date and does not run npm itself.
COPY --from=assets /src/node_modules ./node_modules
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p agora-auth-service -p agora-post-service -p agora-gateway \
    && mkdir -p /out \
    && cp target/release/auth-service target/release/post-service target/release/gateway /out/

# --- Runtime ---------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# ca-certificates for TLS to outside services, curl for the healthchecks.
# (The binaries also link libz.so.1, which bookworm-slim already has.)
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# A non-root user; /var/lib/agora is its home and where auth-service keeps its
# signing key (docker-compose.yml mounts a volume there, which takes this
# directory's owner when first created).
RUN groupadd --system --gid 10001 agora \
    && useradd --system --uid 10001 --gid agora --home-dir /var/lib/agora --no-create-home \
        --shell /usr/sbin/nologin agora \
    && install -d -o agora -g agora -m 0750 /var/lib/agora
COPY --from=build /out/auth-service /out/post-service /out/gateway /usr/local/bin/
# Inside a container the services listen on every interface; their own
# default (127.0.0.1) suits a run on a developer's machine.
ENV HOST=0.0.0.0
WORKDIR /var/lib/agora
USER 10001:10001
# gateway, auth-service, post-service
EXPOSE 8080 8081 8082
CMD ["gateway"]
