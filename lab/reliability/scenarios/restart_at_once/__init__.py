"""The restart at once fault scenario (`scenario.py`)."""
