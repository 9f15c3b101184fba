"""Versioned prompt templates, rendering and the context budget."""
