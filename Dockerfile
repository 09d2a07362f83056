# Container image of cxr-serve with the models exported by the training crate (README "Deploy").
#
#   CPU:   docker build -t cxr-serve .
#   CUDA:  docker build --build-arg FLAVOR=gpu -t cxr-serve:gpu .
#   run:   docker run --rm -p 8080:8080 --stop-timeout 35 cxr-serve        (GPU: add --gpus all)
#
# Stages:
#   build-source    (default) builds cxr-serve and cxr-train with the Rust toolchain, fetches ONNX Runtime 1.31.1
#                   from PyPI (onnxruntime, or onnxruntime-gpu for FLAVOR=gpu) exactly as `make` does, and exports
#                   the seeded models (`cxr-train export`: the same seed gives byte-identical files; FLAVOR=gpu
#                   also writes the FP16 files for `CXR_PRECISION=fp16`).
#   build-prebuilt  (BINARIES=prebuilt) takes the same files from dist/ in the build context instead; used by
#                   scripts/container-check.sh with the binaries `make test` already built, so CI does not compile
#                   everything a second time.
#   runtime-cpu     slim Debian; runtime-gpu: NVIDIA's CUDA 13 + cuDNN 9 runtime image.
#
# Every base image is a build argument so that a mirror or a locally built base can be used (container-check.sh
# builds FROM a Debian made by mmdebstrap, Docker Hub being unreachable there). Every server option is a CXR_*
# environment variable (`cxr-serve --help`); models can be replaced by mounting a directory at /models. On SIGTERM
# the server stops accepting, drains in-flight requests for up to CXR_SHUTDOWN_GRACE_SECS (30 s) and exits 0, so
# give `docker stop` / Kubernetes a longer grace (35 s here, 45 s in deploy/k8s).
ARG FLAVOR=cpu
ARG BINARIES=source
ARG RUST_IMAGE=docker.io/library/rust:1.95-slim-bookworm
ARG DEBIAN_IMAGE=docker.io/library/debian:bookworm-slim
ARG CUDA_IMAGE=docker.io/nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04

FROM ${RUST_IMAGE} AS build-source
ARG FLAVOR
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# cmake + g++: charls-sys builds CharLS (JPEG-LS for DICOM); python3-pip: setup-ort.sh downloads the ORT wheel.
# Versions come from the pinned Debian release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake g++ make python3 python3-pip \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    scripts/setup-ort.sh "$FLAVOR" \
    && cargo build --release --locked -p cxr-serve -p cxr-train --bins \
    && CXR_EXPORT_FP16="$([ "$FLAVOR" = gpu ] && echo true || echo false)" \
       target/release/cxr-train export --variant both --seed 20180908 --out /out/models \
    && mkdir -p /out/lib /out/bin \
    && cp -P .cache/ort/"$FLAVOR"/libonnxruntime* /out/lib/ \
    && cp target/release/cxr-serve /out/bin/

FROM ${DEBIAN_IMAGE} AS build-prebuilt
COPY dist/container/ /out/

# hadolint ignore=DL3006
FROM build-${BINARIES} AS binaries

FROM ${DEBIAN_IMAGE} AS runtime-cpu
ENV CXR_DEVICE=cpu

FROM ${CUDA_IMAGE} AS runtime-gpu
ENV CXR_DEVICE=cuda \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# hadolint ignore=DL3006
FROM runtime-${FLAVOR}
ARG FLAVOR
LABEL org.opencontainers.image.title="cxr-serve" \
      org.opencontainers.image.description="Chest X-ray classifiers pretrained on color vs grayscale ImageNet, served by ONNX Runtime (${FLAVOR})" \
      org.opencontainers.image.licenses="Apache-2.0"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin cxr
COPY --from=binaries /out/lib/ /opt/onnxruntime/lib/
COPY --from=binaries /out/models/ /models/
COPY --from=binaries /out/bin/cxr-serve /usr/local/bin/cxr-serve
ENV ORT_DYLIB_PATH=/opt/onnxruntime/lib/libonnxruntime.so.1.31.1 \
    LD_LIBRARY_PATH=/opt/onnxruntime/lib \
    CXR_BIND=0.0.0.0:8080 \
    CXR_MODELS=/models \
    CXR_LOG_FORMAT=json \
    RUST_LOG=info
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
# Liveness only (the process answers HTTP); readiness is /readyz, used by Kubernetes and compose's depends_on.
# bash's /dev/tcp keeps curl out of the image.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${CXR_BIND##*:} && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["/usr/local/bin/cxr-serve"]
