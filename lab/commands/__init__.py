"""The lab's commands (`python -m lab COMMAND`): one module per command, named after it."""
