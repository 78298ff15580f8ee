# syntax=docker/dockerfile:1
# One image, one binary: `omnibiz api` or `omnibiz gateway` chosen by args.
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# rusqlite builds SQLite from source (bundled); nothing else needs system libraries.
RUN apt-get update && apt-get install -y --no-install-recommends pkg-config && rm -rf /var/lib/apt/lists/*
COPY . .
# The `dist` profile: link-time optimised in one unit (Cargo.toml says why).
RUN cargo build --profile dist --locked -p omnibiz && strip target/dist/omnibiz

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates tini && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin omnibiz
COPY --from=build /src/target/dist/omnibiz /usr/local/bin/omnibiz
USER 10001:10001
ENV HOST=0.0.0.0 PORT=8080 LOG_FORMAT=json DATA_DIR=/tmp/omnibiz
EXPOSE 8080
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/omnibiz"]
CMD ["api"]
