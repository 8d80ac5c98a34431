"""The HTTP front door (FastAPI). Never imports torch."""
