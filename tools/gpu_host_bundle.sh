#!/usr/bin/env bash
# Prepare, where there is network, the pieces tools/gpu_config_check.sh needs on a GPU host
# that has none (Python 3.12, NVIDIA's CUDA 13 pip libraries beside PyTorch, at most 64 MiB per
# transfer; see ../shared/TOOLCHAIN.md's GPU-host section). Each piece lands in its own
# git-ignored folder under .work/device/, under 50 MB, to be sent in its own transfer and kept
# in /tmp/keep on the host:
#   piece-server/   the tritonserver 2.51 tree of nvidia-pytriton 0.7.0 with only the 3.12
#                   Python-backend stub and without libpython (26 MB as xz), and numpy 1.26.4 for
#                   the stubs (the 24.10 stub breaks on numpy 2)
#   piece-ort-N/    onnxruntime-gpu 1.31.1 (CUDA 13) in 50 MB parts, without what the Python
#                   module does not load (TensorRT provider, libonnxruntime.so, tools)
# Usage: tools/gpu_host_bundle.sh [DEST]   (default .work/device; about 300 MB of downloads)
set -euo pipefail

DEST=${1:-.work/device}
PIP=${PIP:-.venv/bin/pip}
PYTRITON=nvidia-pytriton==0.7.0
NUMPY=numpy==1.26.4
ORT_GPU=onnxruntime-gpu==1.31.1
PIECE_BYTES=50000000

download=$DEST/downloads
mkdir -p "$download" "$DEST/piece-server"
"$PIP" download --quiet --no-deps "$PYTRITON" -d "$download"
"$PIP" download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux2014_x86_64 "$NUMPY" -d "$DEST/piece-server"
"$PIP" download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 "$ORT_GPU" -d "$download"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The server tree: one stub (the host's Python), no libpython (tritonserver does not link it).
python3 -m zipfile -e "$download"/nvidia_pytriton-*.whl "$work/pytriton-wheel"
tree=$work/pytriton-wheel
find "$tree/pytriton/tritonserver/python_backend_stubs" -mindepth 1 -maxdepth 1 \
    ! -name 3.12 -exec rm -rf {} +
rm -f "$tree"/nvidia_pytriton.libs/libpython3*.so*
tar -C "$tree" -cJf "$DEST/piece-server/pytriton-tree.tar.xz" pytriton/tritonserver nvidia_pytriton.libs

# ONNX Runtime's CUDA build, in parts small enough for one transfer each.
python3 -m zipfile -e "$download"/onnxruntime_gpu-*.whl "$work/ort-wheel"
ort=$work/ort-wheel/onnxruntime
rm -rf "$ort"/capi/libonnxruntime_providers_tensorrt.so "$ort"/capi/libonnxruntime.so.* \
    "$ort"/transformers "$ort"/quantization "$ort"/tools "$ort"/datasets
rm -rf "$DEST"/piece-ort-*
tar -C "$work/ort-wheel" -cf - onnxruntime | xz -T2 -6 | split -b "$PIECE_BYTES" - "$work/ort-gpu.tar.xz.part."
index=0
for part in "$work"/ort-gpu.tar.xz.part.*; do
    index=$((index + 1))
    mkdir -p "$DEST/piece-ort-$index"
    mv "$part" "$DEST/piece-ort-$index/"
done
du -sh "$DEST"/piece-*
