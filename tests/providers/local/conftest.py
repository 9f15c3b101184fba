"""One embedder for the whole session: loading the ONNX model takes about half a second."""

from __future__ import annotations

import os

import pytest

from groundgate.providers.local.embedder import MiniLMEmbedder

# Nothing may be downloaded at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()
