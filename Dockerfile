# Multi-stage build of the imgmeta binary with the detector's weights baked in.
FROM rust:1.95-bookworm AS build
# libheif (HEIC/HEIF and AVIF; bookworm's 1.15 has its HEVC and AV1 decoders built in).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libheif-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin imgmeta \
 && IMGMETA_MODEL_DIR=/models ./target/release/imgmeta models fetch

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libheif1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 imgmeta \
 && install -d -o imgmeta -g imgmeta -m 0700 /var/lib/imgmeta
COPY --from=build /src/target/release/imgmeta /usr/local/bin/imgmeta
COPY --from=build /models /models
ENV IMGMETA_MODEL_DIR=/models \
    IMGMETA_HTTP_ADDR=0.0.0.0:8080 \
    IMGMETA_LOG_FORMAT=json
USER imgmeta
EXPOSE 8080
ENTRYPOINT ["imgmeta"]
CMD ["up"]
