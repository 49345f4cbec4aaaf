"""The model store fault scenario (`scenario.py`)."""
