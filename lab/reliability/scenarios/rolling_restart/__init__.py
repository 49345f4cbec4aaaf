"""The rolling restart fault scenario (`scenario.py`)."""
