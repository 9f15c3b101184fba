"""The local int8 embedder with a progress bar, for the training commands (``guards train``,
``route train``), which embed thousands of texts before they fit anything."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# Texts per embedding call: the bar moves this often.
_PROGRESS_CHUNK = 64

Embed = Callable[[Sequence[str]], Any]


@contextmanager
def embedding_with_progress(
    console: Console, *, quiet: bool, then: str
) -> Iterator[tuple[Embed, str]]:
    """``(embed, model_id)``: ``embed(texts)`` returns their vectors (one row each) while a bar
    counts them; once done the bar reads ``then`` (what the command does next)."""
    from groundgate.providers.local.models import INT8_EMBEDDER, process_models

    with console.status("loading the embedder", spinner="dots"):
        embedder = process_models().embedder(INT8_EMBEDDER)
    with Progress(
        TextColumn("[bold]{task.description}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    ) as bar:
        task = bar.add_task("embedding", total=None)

        def embed(texts: Sequence[str]) -> Any:
            bar.update(task, total=len(texts))
            parts = [np.zeros((0, embedder.dimension), dtype=np.float32)]
            for start in range(0, len(texts), _PROGRESS_CHUNK):
                chunk = list(texts[start : start + _PROGRESS_CHUNK])
                parts.append(embedder.embed(chunk))
                bar.advance(task, len(chunk))
            bar.update(task, description=then)
            return np.vstack(parts)

        yield embed, embedder.model_id
