"""The name callers know the container by (``groundgate.container.Container``)."""

from groundgate.container import Container as Runtime

__all__ = ["Runtime"]
