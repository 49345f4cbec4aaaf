"""A real Kubernetes control plane on this machine, and a pod runner that does the kubelet's job.

Developer and test tooling for `make cluster` and `make e2e` (docs/cluster.md); nothing here
ships in the wheel or the serving image.
"""
