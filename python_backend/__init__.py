"""The code behind the repository's Python-backend models, importable and testable without Triton.

Each `model.py` in `model_repository/` is glue over these modules; `triton_backends/` holds the
Python-based backends that the local CPU server installs next to Triton's own.
"""
