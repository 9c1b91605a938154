# Dockerfile — the lsmi service image.
#
# Two stages on debian:bookworm-slim: the build stage installs the -dev
# packages with the project's own deploy/install-deps.sh and runs `make`; the
# runtime stage carries only the shared libraries the binary links against
# or opens (libmicrohttpd always, libpq for `serve --store postgresql://`)
# and the stripped binary, and runs as an unprivileged user.
#
#   docker build -t lsmi .
#   docker run -p 8080:8080 -v lsmi-data:/var/lib/lsmi \
#              -e LSMI_TOKENS="$(openssl rand -hex 16)=alice" lsmi
#
# LSMI_TOKENS is TOKEN=TENANT items separated by commas, each token of 16
# characters or more; anything else stops the daemon with a message.
#
# The daemon binds 0.0.0.0:8080 here, and it refuses a non-loopback address
# unless bearer tokens are configured: give LSMI_TOKENS or mount a tokens file
# and point LSMI_TOKENS_FILE at it (deploy/README.md). Without either, the
# entrypoint (deploy/docker-entrypoint.sh) generates one random token into
# the volume on first start (`docker exec CONTAINER cat /var/lib/lsmi/tokens`),
# so a bare `docker run` is up and still closed. /healthz and /readyz answer
# without a token, so the HEALTHCHECK and orchestrator probes work.
#
# PID 1 is `lsmi serve` itself: the exec-form entrypoint script ends in
# `exec "$@"`, so the daemon replaces it and gets SIGTERM directly; it
# handles it by refusing new work, requeueing running jobs and closing the
# store, and it starts no child processes, so nothing needs reaping.

FROM debian:bookworm-slim AS build
WORKDIR /src
COPY deploy/install-deps.sh deploy/install-deps.sh
RUN ./deploy/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN make -j"$(nproc)" build/lsmi && strip build/lsmi && ./build/lsmi probe --help >/dev/null

FROM debian:bookworm-slim
RUN apt-get update -q \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      libmicrohttpd12 libjansson4 libopenblas0-pthread libuv1 libsqlite3-0 zlib1g libpq5 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/log/apt /var/log/dpkg.log \
 && find /usr/share/doc -type f ! -name copyright -delete \
 && groupadd --system --gid 10001 lsmi \
 && useradd --system --uid 10001 --gid lsmi --home-dir /var/lib/lsmi \
      --no-create-home --shell /usr/sbin/nologin lsmi \
 && install -d -o lsmi -g lsmi -m 0750 /var/lib/lsmi
COPY --from=build /src/build/lsmi /usr/local/bin/lsmi
COPY deploy/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh

ENV LSMI_LISTEN=0.0.0.0:8080 \
    LSMI_DATA_DIR=/var/lib/lsmi
VOLUME ["/var/lib/lsmi"]
WORKDIR /var/lib/lsmi
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# The probe reads LSMI_LISTEN, so it follows a changed port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["lsmi", "probe", "--timeout", "4", "/healthz"]
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
CMD ["lsmi", "serve"]
