"""`python -m monitoring.cli`."""

from monitoring.cli.main import run

run()
