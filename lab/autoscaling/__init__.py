"""Autoscaling studied on this machine: the capacity simulator, its model of the Kubernetes HPA
algorithm (`hpa`), and the local end-to-end loop (Triton, Prometheus, perf_analyzer)."""
