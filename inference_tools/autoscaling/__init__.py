"""Autoscaling on Triton's queue metrics: the rendered scaling configuration
(`rendered_settings`, `hpa_spec`), the ServiceMonitor's scrape settings and target calibration.
The simulator, the HPA algorithm's model and the local loop are the lab's (`lab/autoscaling/`)."""
