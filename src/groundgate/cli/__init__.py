"""``groundgate``: the command line. ``cli/app.py`` holds the root command and the server's
own commands; the others register on it (grounding: ingest; evals: eval; keys; guards; route;
prompts).
Commands call services and stores in-process, never the HTTP routes; only ``serve`` builds the
HTTP app."""

from __future__ import annotations


def main() -> None:
    from groundgate.cli import (
        datasets,
        evals,
        grounding,
        guards,
        keys,
        prompts,
        report,
        review,
        route,
        runs,
    )
    from groundgate.cli.app import app, load_or_exit

    grounding.register(app, load_or_exit)
    evals.register(app, load_or_exit)
    keys.register(app, load_or_exit)
    review.register(app, load_or_exit)
    guards.register(app, load_or_exit)
    report.register(app, load_or_exit)
    route.register(app, load_or_exit)
    datasets.register(app, load_or_exit)
    prompts.register(app, load_or_exit)
    runs.register(app, load_or_exit)
    app()
