"""The fault scenarios, one folder each: `scenario.py` and the fixtures it alone uses."""
