"""python -m kubecluster {up,down,build,leftovers}: what `make cluster`, `make cluster-down` run."""

from __future__ import annotations

import argparse
import json
import sys

from kubecluster import control_plane, network
from kubecluster.build import BuildError, ensure_binaries
from kubecluster.layout import ClusterLayout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kubecluster", description=__doc__)
    parser.add_argument("action", choices=("up", "down", "build", "leftovers"))
    args = parser.parse_args(argv)
    layout = ClusterLayout.for_checkout()
    try:
        if args.action == "up":
            control_plane.up(layout)
        elif args.action == "down":
            control_plane.down(layout)
        elif args.action == "build":
            print(ensure_binaries(layout))
        else:
            print(json.dumps(network.leftovers()))
    except (BuildError, control_plane.ClusterStartError, network.NetworkSetupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
