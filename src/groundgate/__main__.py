"""``python -m groundgate`` is the CLI."""

from groundgate.cli import main

main()
