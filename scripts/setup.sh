#!/usr/bin/env bash
# Create .venv and install monitoring into it (add "dev" as first argument for test tools and
# the Spark extra, whose tests run in CI).
# constraints.txt pins the CPU build of torch; an unpinned torch pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras=""
if [ "${1:-}" = "dev" ]; then extras="[dev,spark]"; fi
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install --quiet --quiet --disable-pip-version-check -c constraints.txt -e ".${extras}"
