"""Tooling for the scalable inference server: local serving, publishing, benchmarks, autoscaling."""
