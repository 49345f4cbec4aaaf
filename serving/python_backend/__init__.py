"""The code behind the repository's Python-backend models, importable and testable without Triton.

Each `model.py` in `model_repository/` is glue over these modules. The local CPU server's
Python-based `onnxruntime` backend is tooling, not served code: `inference_tools/local_backends/`.
"""
