"""Autoscaling on Triton's queue metrics: the Kubernetes HPA algorithm, the rendered scaling
configuration, the local end-to-end loop, target calibration and a capacity simulation."""
