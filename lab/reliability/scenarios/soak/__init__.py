"""The soak fault scenario (`scenario.py`)."""
