"""The pod hooks: code that runs inside the serving container, beside tritonserver.

- `drain`: the preStop hook (`triton-drain`): wait until nothing is in flight before SIGTERM.
- `unload_drain`: its exact mechanism: unload the models, wait until Triton has released them.
- `model_roles`: which models are entry points, ensembles or their steps (probe and drain).
- `health_probe`: the readiness and liveness probe (`triton-probe`): a canary inference.
- `prometheus_text`: the parser of Triton's /metrics page, shared with the tooling.

Standard library only, and nothing outside this folder: the image copies the folder whole and
runs the files with the image's own Python, which has none of the project's dependencies
(tests/pod_hooks/test_standalone.py runs them under `python -I -S` to hold that).
"""
