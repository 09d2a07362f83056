# Container image of the inference server, with the models produced by the training crate.
#
#   docker build -t cxr-serve .
#   docker run -p 8080:8080 cxr-serve
#
# Stage 1 builds both binaries, fetches ONNX Runtime 1.31.1 from PyPI and exports the models (deterministic:
# the same seed gives the same files as `make models`). Stage 2 is a slim runtime with only the server, the
# ONNX Runtime shared library and models/. For CUDA, build with --build-arg ORT_FLAVOR=gpu on a CUDA 13 +
# cuDNN 9 base image and run with --device cuda.
FROM rust:1.95-bookworm AS build
ARG ORT_FLAVOR=cpu
RUN apt-get update && apt-get install -y --no-install-recommends cmake python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/setup-ort.sh "$ORT_FLAVOR" \
    && cargo build --release -p cxr-serve -p cxr-train --bins \
    && ./target/release/cxr-train export --variant both --out /out/models \
    && mkdir -p /out/lib && cp -P .cache/ort/"$ORT_FLAVOR"/libonnxruntime* /out/lib/ \
    && cp target/release/cxr-serve /out/

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libgomp1 \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 cxr
COPY --from=build /out/lib/ /opt/onnxruntime/lib/
COPY --from=build /out/models/ /srv/models/
COPY --from=build /out/cxr-serve /usr/local/bin/cxr-serve
ENV ORT_DYLIB_PATH=/opt/onnxruntime/lib/libonnxruntime.so.1.31.1 \
    CXR_BIND=0.0.0.0:8080 \
    CXR_MODELS=/srv/models \
    RUST_LOG=info
USER cxr
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q 200"]
ENTRYPOINT ["/usr/local/bin/cxr-serve"]
