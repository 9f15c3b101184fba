"""Groundgate: a production GenAI gateway."""

__version__ = "0.1.0"
