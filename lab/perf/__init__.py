"""The benchmark study of the served text-embedding pipeline and of what it is measured against.

- `inprocess_baseline`: the floor, the same pipeline in one Python process with no server;
  `inprocess` measures it.
- `microservice`: what a user would build instead, a FastAPI app around the same pipeline.
- `suite`: one run that measures all of them back to back; `report`: CSV, Markdown and plots.
- `serving_path`: the serving path alone (a lookup encoder); `tuning`: encoder variants.

Running perf_analyzer and its data set are the tooling's (`inference_tools.perf`).
"""
