"""The local stop fault scenario (`scenario.py`)."""
