#!/usr/bin/env bash
# Quick start, tests: set up with the dev tools, lint, run the whole suite. CI runs this.
# Needs PostgreSQL at 127.0.0.1:5432 (trust auth, database "test") for the tests marked
# postgres; they fail, never skip, when it is not there.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
export MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
