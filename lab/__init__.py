"""The lab: what we study the product with, never installed with it.

- `perf/`: the benchmark study (suite, report, tuning, the serving path alone) and the two
  baselines Triton is measured against (`inprocess_baseline`, `microservice`).
- `autoscaling/`: the capacity simulator, its model of the Kubernetes HPA algorithm, and the
  autoscaling loop run on this machine.
- `reliability/`: the fault scenarios, one folder each under `scenarios/` with their fixtures,
  and the harness they share (local replicas behind nginx, load, the pod's lifecycle).
- `commands/`: `python -m lab COMMAND`, which `make perf`, `make simulate`, `make
  autoscale-demo` and `make reliability` run from the checkout's root.

The lab imports the tooling (`inference_tools`) and the serving unit; nothing there imports the
lab.
"""
