#!/usr/bin/env bash
# Start the team's MLflow tracking server with the settings in mlruns_config/server.env
# (or the file given as first argument). Clients then set MLFLOW_TRACKING_URI to
# http://HOST:PORT. Passwords in the backend URI are never printed.
set -euo pipefail
cd "$(dirname "$0")/.."
settings="${1:-mlruns_config/server.env}"
set -a; . "$settings"; set +a
python=".venv/bin/python"
[ -x "$python" ] || python="python3"
# Create the PostgreSQL database when the backend is PostgreSQL and it does not exist yet.
"$python" - <<'PY'
import os
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

url = make_url(os.environ["MLFLOW_BACKEND_STORE_URI"])
if url.get_backend_name() == "postgresql":
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
        ).first()
        if not exists:
            connection.execute(text(f'CREATE DATABASE "{url.database}"'))
            print(f"created database {url.database}")
    admin.dispose()
PY
echo "MLflow tracking server on http://${MLFLOW_HOST}:${MLFLOW_PORT}" >&2
exec "$python" -m mlflow server \
  --backend-store-uri "$MLFLOW_BACKEND_STORE_URI" \
  --artifacts-destination "$MLFLOW_ARTIFACTS_DESTINATION" \
  --host "$MLFLOW_HOST" --port "$MLFLOW_PORT" --workers "$MLFLOW_WORKERS"
