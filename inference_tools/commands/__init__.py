"""The command-line layer: one module per `inference-tools` command, named after it.

A group of commands is a package (`commands/autoscaling/`). Each module exposes
`register(subparsers)` and keeps to parsing options; the work lives in the feature packages.
"""
