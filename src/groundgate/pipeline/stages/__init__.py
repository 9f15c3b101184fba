"""The stages, one module each; ``pipeline/registry.py`` names them for config."""
