"""Measuring a served model: perf_analyzer and what it sends.

- `dataset`: the reproducible set of texts every run sends (short queries to long paragraphs).
- `perf_analyzer`: builds perf_analyzer command lines and parses their CSV reports.
- `measured_model`: which model of a repository a measurement loads and what it sends.

The benchmark study that compares Triton with its baselines is the lab's (`lab/perf/`).
"""
