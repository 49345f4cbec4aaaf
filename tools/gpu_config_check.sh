#!/usr/bin/env bash
# Does model_repository/ load on a GPU host with --model-config-name=gpu (KIND_GPU instances,
# the TensorRT accelerator block) under tritonserver 2.51? A developer check for a machine with
# an NVIDIA GPU and Python 3.12 but no network: it uses the nvidia-pytriton wheel (fetch it
# first, where there is network: `pip download --no-deps nvidia-pytriton==0.7.0 -d .work/device`)
# and the served tokenizer.json, and builds the encoder with random weights of the real shapes
# (loading and placement only, not accuracy). Writes Triton's log, the repository index, the
# minilm config as served and the metrics to $OUT (default: .work/device/out).
#
# Seen on an H100 (2026-11-27): all four models READY, minilm as two KIND_GPU instances, GPU
# metrics exported. Inference then failed inside that machine's Python (numpy 2.x against the
# 24.10 Python-backend stub's bytes deserialisation), which the NGC image (numpy 1.x) avoids.
set -u
ROOT=$(pwd)
OUT=${OUT:-$ROOT/.work/device/out}; mkdir -p "$OUT"
W=/tmp/gpucheck; rm -rf $W; mkdir -p $W
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee $OUT/nvidia-smi.txt
PY=$(command -v python3); echo "python: $PY $($PY --version)"
cd $W && python3 -m zipfile -e $ROOT/.work/device/nvidia_pytriton-0.7.0-py3-none-manylinux_2_35_x86_64.whl wheel >/dev/null
SRV=$W/wheel/pytriton/tritonserver; LIBS=$W/wheel/nvidia_pytriton.libs
chmod +x $SRV/bin/tritonserver $SRV/python_backend_stubs/*/triton_python_backend_stub
cp $SRV/python_backend_stubs/3.12/triton_python_backend_stub $SRV/backends/python/
cp -r $ROOT/scripts/inference_tools/local_backends/onnxruntime $SRV/backends/onnxruntime
cp -r $ROOT/model_repository $W/repo
cp $ROOT/model_repository/tokenizer/1/tokenizer.json $W/repo/tokenizer/1/
# Random weights of the real shapes: this checks loading and placement, not accuracy.
cd $ROOT && PYTHONPATH=$ROOT/scripts:$ROOT python3 - <<'PY'
import numpy as np
from pathlib import Path
from inference_tools.bert_onnx import build_bert_encoder
cfg = dict(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
           intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2,
           layer_norm_eps=1e-12, hidden_act="gelu")
rng = np.random.default_rng(0); w = {}
def t(name, *shape): w[name] = (rng.standard_normal(shape) * 0.02).astype(np.float32)
t("embeddings.word_embeddings.weight", 30522, 384); t("embeddings.position_embeddings.weight", 512, 384)
t("embeddings.token_type_embeddings.weight", 2, 384)
w["embeddings.LayerNorm.weight"] = np.ones(384, np.float32); w["embeddings.LayerNorm.bias"] = np.zeros(384, np.float32)
for i in range(6):
    p = f"encoder.layer.{i}."
    for n in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
        t(p + n + ".weight", 384, 384); t(p + n + ".bias", 384)
    t(p + "intermediate.dense.weight", 1536, 384); t(p + "intermediate.dense.bias", 1536)
    t(p + "output.dense.weight", 384, 1536); t(p + "output.dense.bias", 384)
    for n in ("attention.output.LayerNorm", "output.LayerNorm"):
        w[p + n + ".weight"] = np.ones(384, np.float32); w[p + n + ".bias"] = np.zeros(384, np.float32)
build_bert_encoder(w, cfg, Path("/tmp/gpucheck/repo/minilm/1/model.onnx"))
print("onnx built")
PY
export LD_LIBRARY_PATH=$LIBS:${LD_LIBRARY_PATH:-}; export PYTHONPATH=$ROOT
$SRV/bin/tritonserver --model-repository=$W/repo --backend-directory=$SRV/backends --model-config-name=gpu \
  --http-port 8000 --grpc-port 8001 --metrics-port 8002 --log-verbose=1 > $OUT/triton.log 2>&1 &
PID=$!
for i in $(seq 1 90); do curl -sf localhost:8000/v2/health/ready >/dev/null && break; sleep 1; done
echo "ready after ${i}s: $(curl -s -o /dev/null -w '%{http_code}' localhost:8000/v2/health/ready)"
curl -s -X POST localhost:8000/v2/repository/index | tee $OUT/index.json; echo
curl -s localhost:8000/v2/models/minilm/config | tee $OUT/minilm-config.json | head -c 1500; echo
curl -s -X POST localhost:8000/v2/models/text_embedding/infer -d '{"inputs":[{"name":"TEXT","shape":[2,1],"datatype":"BYTES","data":["hello world","on a GPU node"]}]}' | head -c 300; echo
curl -s localhost:8002/metrics > $OUT/metrics.txt; grep -E "^nv_gpu|^nv_inference_exec_count" $OUT/metrics.txt | head -20
kill -TERM $PID; wait $PID; echo "triton exit $?"
grep -iE "error|failed|KIND_GPU|instance" $OUT/triton.log | head -40
