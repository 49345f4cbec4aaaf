"""The command-line layer: one module per `inference-tools` command, named after it.

A group of commands is a package (`commands/autoscaling/`). Each module declares its options
(`add_arguments`) and runs (`run`); the work lives in the feature packages. The rules:
`inference_tools.cli` and `command_parser.add_command`.
"""
