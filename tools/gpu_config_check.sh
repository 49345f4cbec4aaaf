#!/usr/bin/env bash
# The GPU host check: serve model_repository/ with --model-config-name=gpu and the encoder on the
# GPU, check the embeddings against the CPU path, and measure served and in-process throughput.
#
# For a GPU machine with no network (as in ../shared/TOOLCHAIN.md: Python 3.12 with numpy 2,
# PyTorch and NVIDIA's CUDA 13 pip libraries, CPU-only onnxruntime, onnx, tokenizers, aiohttp).
# What it needs from elsewhere is prepared by tools/gpu_host_bundle.sh and copied, one transfer
# per piece, into $KEEP (default /tmp/keep):
#   pytriton-tree.tar.xz      tritonserver 2.51 (nvidia-pytriton 0.7.0), 3.12 stub only
#   numpy-1.26.4-*.whl        for the Python-backend stubs (the 24.10 stub breaks on numpy 2)
#   ort-gpu.tar.xz.part.*     onnxruntime-gpu 1.31.1, in parts
# and model_repository/tokenizer/1/tokenizer.json (built by `make setup`). The encoder is built
# on the host with random weights of the real shapes (the weights package cannot be fetched
# there): placement, agreement with the CPU path and speed are checked, not meaning.
#
# Steps: unpack the server and give its Python backend the 3.12 stub and our Python-based
# `onnxruntime` backend; a venv for the stubs with numpy 1.26, the CUDA build of ONNX Runtime
# and the host's own packages behind it (.pth); fit the CPU-side instances to this host's CPUs
# (triton-fit-instances, as the container does at start); serve; compare embeddings; load it.
# Writes its log, the served configs and the figures to $OUT (default .work/device/out).
#
# Usage: tools/gpu_config_check.sh    (from the repository root; env: KEEP, OUT, PY, SECONDS_PER_LEVEL)
set -euo pipefail

ROOT=$(pwd)
KEEP=${KEEP:-/tmp/keep}
OUT=${OUT:-$ROOT/.work/device/out}
PY=${PY:-$(command -v python3)}
SECONDS_PER_LEVEL=${SECONDS_PER_LEVEL:-10}
W=$(mktemp -d /tmp/gpucheck.XXXXXX)
SERVER_PID=
mkdir -p "$OUT"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"

say() { echo "$*" | tee -a "$SUMMARY"; }
fail() { say "FAILED: $*"; exit 1; }
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID"
        wait "$SERVER_PID" || true
    fi
    rm -rf "$W"
}
trap cleanup EXIT

for needed in "$KEEP/pytriton-tree.tar.xz" "$ROOT/model_repository/tokenizer/1/tokenizer.json"; do
    [[ -f $needed ]] || fail "$needed is missing (tools/gpu_host_bundle.sh and make setup make it)"
done
compgen -G "$KEEP/numpy-1.26.4-*.whl" >/dev/null || fail "no numpy 1.26.4 wheel in $KEEP"
compgen -G "$KEEP/ort-gpu.tar.xz.part.*" >/dev/null || fail "no onnxruntime-gpu parts in $KEEP"

say "GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader)"
say "CPUs: $(nproc); python: $PY ($("$PY" --version 2>&1))"

# 1. The server: stub for this Python, our Python-based onnxruntime backend.
tar -C "$W" -xJf "$KEEP/pytriton-tree.tar.xz"
SRV=$W/pytriton/tritonserver
chmod +x "$SRV/bin/tritonserver" "$SRV"/python_backend_stubs/*/triton_python_backend_stub
cp "$SRV/python_backend_stubs/3.12/triton_python_backend_stub" "$SRV/backends/python/"
cp -r "$ROOT/inference_tools/local_backends/onnxruntime" "$SRV/backends/onnxruntime"

# 2. The stubs' environment: numpy 1.26 first, then ONNX Runtime's CUDA build, the project, and
#    the host's site-packages (tokenizers) behind them. The stub takes its site-packages from
#    the python3 first on PATH, so the server starts with this venv's bin/ in front.
STUBENV=$W/stubenv
"$PY" -m venv --without-pip "$STUBENV"
SITE=$("$STUBENV/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
"$PY" -m pip install --quiet --no-index --no-deps --target "$SITE" "$KEEP"/numpy-1.26.4-*.whl
mkdir -p "$W/ort-gpu"
cat "$KEEP"/ort-gpu.tar.xz.part.* | xz -d | tar -C "$W/ort-gpu" -x
HOST_SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n' "$W/ort-gpu" "$ROOT" "$ROOT/serving" "$HOST_SITE" >"$SITE/gpucheck.pth"
"$STUBENV/bin/python3" -c 'import numpy, onnxruntime; print("stub env: numpy", numpy.__version__, "onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())' | tee -a "$SUMMARY"

# NVIDIA's CUDA 13 libraries beside PyTorch, found by the CUDA provider at load.
LD_LIBRARY_PATH=$W/nvidia_pytriton.libs
while IFS= read -r lib; do LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$lib; done \
    < <(find "$HOST_SITE/nvidia" -maxdepth 3 -type d -name lib 2>/dev/null | sort)
export LD_LIBRARY_PATH

# 3. The repository: random-weight encoder, then instance counts fitted to this host.
cp -r "$ROOT/model_repository" "$W/repo-source"
rm -f "$W/repo-source/minilm/1/model.onnx"
"$PY" "$ROOT/tools/gpu_host_check.py" build-encoder "$W/repo-source/minilm/1/model.onnx" | tee -a "$SUMMARY"
"$PY" "$ROOT/serving/pod_hooks/fit_instances.py" --out "$W/repo" -- \
    true "--model-repository=$W/repo-source" --model-config-name=gpu | tee -a "$SUMMARY"

# 4. Serve on free loopback ports.
free_port() { "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port); GRPC_PORT=$(free_port); METRICS_PORT=$(free_port)
URL=127.0.0.1:$HTTP_PORT
PATH=$STUBENV/bin:$PATH VIRTUAL_ENV=$STUBENV "$SRV/bin/tritonserver" \
    --model-repository="$W/repo" --backend-directory="$SRV/backends" --model-config-name=gpu \
    --http-address=127.0.0.1 --grpc-address=127.0.0.1 --metrics-address=127.0.0.1 \
    --http-port="$HTTP_PORT" --grpc-port="$GRPC_PORT" --metrics-port="$METRICS_PORT" \
    >"$OUT/triton.log" 2>&1 &
SERVER_PID=$!
ready=0
for second in $(seq 1 180); do
    if curl -sf "http://$URL/v2/health/ready" >/dev/null; then ready=$second; break; fi
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 1
done
if [[ $ready == 0 ]]; then
    tail -30 "$OUT/triton.log"
    fail "the server did not become ready (log: $OUT/triton.log)"
fi
say "ready after ${ready} s"
for model in minilm tokenizer; do
    curl -s "http://$URL/v2/models/$model/config" >"$OUT/$model-config.json"
    say "$model instances: $("$PY" -c 'import json, sys; print(json.load(sys.stdin)["instance_group"])' <"$OUT/$model-config.json")"
done

# 5. Embeddings against the CPU path (the host's CPU onnxruntime, same model file).
"$PY" "$ROOT/tools/gpu_host_check.py" embeddings "$URL" "$W/repo" | tee -a "$SUMMARY"

# 6. Served throughput: one-text and 64-text requests, HTTP with binary tensors.
"$PY" "$ROOT/tools/gpu_host_check.py" load "$URL" --texts 1 --concurrency 1,16,64 \
    --seconds "$SECONDS_PER_LEVEL" | tee -a "$SUMMARY"
"$PY" "$ROOT/tools/gpu_host_check.py" load "$URL" --texts 64 --concurrency 1,4,16 \
    --seconds "$SECONDS_PER_LEVEL" | tee -a "$SUMMARY"
curl -s "http://127.0.0.1:$METRICS_PORT/metrics" >"$OUT/metrics.txt"
grep -E '^nv_inference_(exec_count|count)\{' "$OUT/metrics.txt" | tee -a "$SUMMARY" || true
kill -TERM "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=

# 7. In-process on the GPU: the floor the served figures compare with.
"$STUBENV/bin/python3" "$ROOT/tools/gpu_host_check.py" inprocess "$W/repo" \
    --seconds "$SECONDS_PER_LEVEL" | tee -a "$SUMMARY"
say "done; figures in $SUMMARY"
