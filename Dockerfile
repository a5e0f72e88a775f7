# omg-server on the CPU (the default Flex backend): a multi-stage build, no GPU needed.
#
#   docker build -t omg-server .
#   docker run --rm -p 8080:8080 omg-server                       # the built-in demo bundle
#   docker run --rm -p 8080:8080 -v /data/omg_llava:/models:ro \
#       -e OMG_SERVER_API_KEY=... omg-server --addr 0.0.0.0:8080 --bundle /models --llm-weights int8
#
# The CUDA image is described in docs/serving.md ("Containers").

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p omg-server --bin omg-server \
    && strip target/release/omg-server

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin omg
COPY --from=build /src/target/release/omg-server /usr/local/bin/omg-server
USER 10001
EXPOSE 8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["omg-server"]
CMD ["--addr", "0.0.0.0:8080"]
