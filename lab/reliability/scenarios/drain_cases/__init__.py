"""The drain cases fault scenario (`scenario.py`)."""
