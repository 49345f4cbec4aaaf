"""Benchmarks of the served text-embedding pipeline and of the two things it is measured against.

- `dataset`: the reproducible set of texts every run sends (short queries to long paragraphs).
- `perf_analyzer`: builds perf_analyzer command lines and parses their CSV reports (reusable).
- `inprocess`: the floor, the same pipeline in one Python process with no server.
- `microservice`: what a user would build instead, a FastAPI app around the same pipeline.
- `suite`: one run that measures all of them back to back; `report`: CSV, Markdown and plots.
"""
