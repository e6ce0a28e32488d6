"""`python -m mtavg` is the `mtavg` command."""

from mtavg.cli import main

main()
