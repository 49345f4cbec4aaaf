"""Autoscaling on Triton's queue metrics: the rendered scaling configuration
(`rendered_settings`, `hpa_spec`), the ServiceMonitor's scrape settings and target calibration.
The simulator and the HPA algorithm's model are the lab's (`lab/autoscaling/`)."""
