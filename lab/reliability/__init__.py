"""Fault and overload scenarios against real local Triton servers, shared by tests and the lab's
`reliability` command: `scenarios/<name>/` one folder each, and the harness they share
(`local_replicas`: local Triton replicas behind nginx standing in for a Deployment; `load`,
`nginx`, `edge`, `pod_lifecycle`, `processes`, `report`)."""
