"""The hostile input fault scenario (`scenario.py`)."""
