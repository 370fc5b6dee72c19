#!/usr/bin/env bash
# Quick start, main job: set up, then run the demo end to end on embedded defaults
# (SQLite tracking store ./mlflow.db, local artifacts ./mlruns, no server).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export MLFLOW_DISABLE_TELEMETRY=true MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT=true
exec .venv/bin/monitoring demo "$@"
