# syntax=docker/dockerfile:1
# The litedist image: built in a Debian 12 stage, run from debian:12-slim as a non-root user,
# configured by LITEDIST_... variables, secrets by LITEDIST_..._FILE (docs/deploy.md#containers).
FROM debian:12 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake make gcc libc6-dev pkg-config \
      libevent-dev libjansson-dev libsqlite3-dev liblmdb-dev libsodium-dev libssl-dev libwslay-dev \
      libsystemd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Release: no -Werror (a newer compiler's new warning must not break an image build); the tests
# run in CI, not here.
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DLD_BUILD_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX=/usr/local \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build --component server --strip

FROM debian:12-slim
# The libraries litedistd and its plugins link (the Depends of the Debian package) and curl for
# the health check.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libevent-2.1-7 libevent-core-2.1-7 \
      libevent-pthreads-2.1-7 libevent-openssl-2.1-7 libjansson4 libsodium23 libsqlite3-0 \
      liblmdb0 libssl3 libwslay1 libsystemd0 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 litedist \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/litedist \
      --shell /usr/sbin/nologin litedist \
 && install -d -o litedist -g litedist -m 0750 /var/lib/litedist
COPY --from=build /out/ /
COPY deploy/docker/entrypoint.sh /usr/local/bin/litedist-entrypoint
ENV LITEDIST_Node__ListenAddress=0.0.0.0 \
    LITEDIST_Node__Port=1446 \
    LITEDIST_Node__DataDirectory=/var/lib/litedist
USER 10001:10001
WORKDIR /var/lib/litedist
VOLUME /var/lib/litedist
EXPOSE 1446
# Ready: storage answers, the start-up catch-up is done, not draining (plain HTTP; with Node.Tls
# override it, docs/deploy.md).
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD curl -fsS -o /dev/null "http://127.0.0.1:${LITEDIST_Node__Port}/readyz" || exit 1
ENTRYPOINT ["/usr/local/bin/litedist-entrypoint"]
CMD ["litedistd"]
