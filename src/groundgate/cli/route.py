"""``groundgate route train``: fit the learned router and the cascade's answer verifier on
routing data (``routing/train.py`` documents the recipe) and print their held-out figures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from groundgate.cli.embedding_progress import embedding_with_progress
from groundgate.config import Settings

err = Console(stderr=True)
out = Console()

route_app = typer.Typer(
    help="Train the learned router and the answer verifier.", no_args_is_help=True
)
_PROGRESS_CHUNK = 64  # texts embedded between two progress updates


def register(app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    """Add ``route`` and its commands (none reads the config)."""
    del load
    app.add_typer(route_app, name="route")


@route_app.command()
def train(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Folder with gsm8k/gsm8k_responses.csv and/or mmlu/responses/*.csv "
            "(RouteLLM's format, as ../shared/data/routing).",
            file_okay=False,
        ),
    ],
    out_router: Annotated[
        Path | None,
        typer.Option("--out-router", help="Router file to write. Default: the shipped one's."),
    ] = None,
    out_verifier: Annotated[
        Path | None,
        typer.Option("--out-verifier", help="Verifier file to write. Default: the shipped one's."),
    ] = None,
    holdout: Annotated[
        float, typer.Option(min=0.01, max=0.9, help="Share of prompts held out (by hash).")
    ] = 0.2,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
    cache_dir: Annotated[
        Path,
        typer.Option(help="Embeddings cached here by text hash (re-runs skip the embedding)."),
    ] = Path(".bench-cache/routing"),
    no_cache: Annotated[bool, typer.Option(help="Do not read or write the cache.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train the learned router (and, when the data hold answers, the verifier) by the shipped
    recipe; print the held-out figures. Run from the repository root for the default paths."""

    from groundgate.routing import train as recipe

    if not data.is_dir():
        err.print(f"[red]error:[/red] no folder {data}", highlight=False)
        raise typer.Exit(2)
    router_path = out_router or recipe.RECIPE_ROUTER_OUT
    verifier_path = out_verifier or recipe.RECIPE_VERIFIER_OUT

    with embedding_with_progress(err, quiet=quiet, then="fitting") as (embed, model_id):
        try:
            trained = recipe.train(
                data,
                embed=embed,
                embedder=model_id,
                holdout=holdout,
                seed=seed,
                cache_dir=None if no_cache else cache_dir,
            )
        except (ValueError, KeyError) as exc:
            err.print(f"[red]error:[/red] cannot train on {data}: {exc}", highlight=False)
            raise typer.Exit(2) from None
    recipe.write_json(router_path, trained.router.to_json())
    _print_router(trained.router.threshold, trained.router.meta)
    written = [str(router_path)]
    if trained.verifier is not None:
        recipe.write_json(verifier_path, trained.verifier.to_json())
        _print_verifier(trained.verifier.threshold, trained.verifier.meta)
        written.append(str(verifier_path))
    else:
        err.print("no answers in the data (GSM8K's file): no verifier trained")
    err.print(f"wrote {', '.join(written)}", highlight=False)


def _at(figures: dict[str, float] | None) -> str:
    if figures is None:
        return "never reaches 95% of the strong accuracy"
    return (
        f"strong share {figures['strong_share']:.3f}, cost ratio {figures['cost_ratio']:.3f}, "
        f"accuracy {figures['accuracy']:.3f}"
    )


def _print_router(threshold: float, meta: dict[str, Any]) -> None:
    out.print(
        f"router: {meta['rows']} prompts ({meta['train_rows']} trained, "
        f"{meta['holdout_rows']} held out); held-out AUC {meta['holdout_auc']:.4f}",
        highlight=False,
    )
    out.print(f"router threshold {threshold:.4f}", highlight=False)
    table = Table("held out", "prompts", "AUC", "cheapest point at 95% of strong accuracy")
    table.add_row(
        "all", str(meta["holdout_rows"]), f"{meta['holdout_auc']:.4f}", _at(meta["holdout_at_95"])
    )
    for name, part in meta["holdout_by_dataset"].items():
        table.add_row(name, str(part["rows"]), f"{part['auc']:.4f}", _at(part["at_95"]))
    out.print(table)


def _print_verifier(threshold: float, meta: dict[str, Any]) -> None:
    out.print(
        f"verifier: {meta['rows']} answers ({meta['train_rows']} trained, "
        f"{meta['holdout_rows']} held out); held-out AUC {meta['holdout_auc']:.4f}",
        highlight=False,
    )
    out.print(f"verifier threshold {threshold:.4f}", highlight=False)
    out.print(f"held-out cascade: {_at(meta['holdout_cascade_at_95'])}", highlight=False)
