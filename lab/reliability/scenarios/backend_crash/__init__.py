"""The backend crash fault scenario (`scenario.py`)."""
