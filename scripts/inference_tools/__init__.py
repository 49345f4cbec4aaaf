"""Tooling for the scalable inference server: local serving, model publishing, benchmarks, autoscaling."""
