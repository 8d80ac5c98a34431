"""knas: distributed, training-free neural architecture search (KNAS gradient kernel)."""

__version__ = "0.1.0"
