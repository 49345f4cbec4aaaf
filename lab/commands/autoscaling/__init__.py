"""`python -m lab autoscaling ACTION`: the autoscaling simulation and the local loop.

One module per action: `simulate`, `demo`, `cluster-step`. The product's actions (`calibrate`,
`adapter-values`) are `inference-tools autoscaling ACTION`.
"""

from __future__ import annotations

from lab.commands.autoscaling import cluster_step, demo, simulate

SUMMARY = "simulate the fleet, run the local autoscaling loop"
ACTIONS = [simulate, demo, cluster_step]

DESCRIPTION = """\
Autoscaling studied on this machine:

  simulate  compare scaling signals and policies on simulated traces (not measured)
  demo      run the whole autoscaling loop on this machine, with a timeline and a plot
  cluster-step
            a load step recorded on make cluster beside the simulator's prediction

Run `python -m lab autoscaling ACTION --help` for the options of each.
"""
