"""The sigterm in flight fault scenario (`scenario.py`)."""
