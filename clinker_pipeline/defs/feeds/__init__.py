"""External feeds, one folder each, each declared once by its `spec.py` (see `spec.py` here)."""
