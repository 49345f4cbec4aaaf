"""The overload fault scenario (`scenario.py`)."""
