"""`python -m lab autoscaling ACTION`: the autoscaling simulation, and the load step recorded on
the cluster beside it.

One module per action: `simulate`, `cluster-step`. The product's actions (`calibrate`,
`adapter-values`) are `inference-tools autoscaling ACTION`.
"""

from __future__ import annotations

from lab.commands.autoscaling import cluster_step, simulate

SUMMARY = "simulate the fleet; a load step on make cluster beside the simulation"
ACTIONS = [simulate, cluster_step]

DESCRIPTION = """\
Autoscaling studied on this machine:

  simulate  compare scaling signals and policies on simulated traces (not measured)
  cluster-step
            a load step recorded on make cluster beside the simulator's prediction

Run `python -m lab autoscaling ACTION --help` for the options of each.
"""
