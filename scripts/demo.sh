#!/usr/bin/env bash
# Set up, load the demo city (once) and serve GeoShare on http://127.0.0.1:8000
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export GEOSHARE_DATABASE_URL=${GEOSHARE_DATABASE_URL:-postgresql+psycopg://geoshare:geoshare@127.0.0.1:5432/geoshare}
.venv/bin/geoshare demo load --if-missing --upgrade
# GEOSHARE_FRONT=none serves without the nginx front cache
exec .venv/bin/geoshare serve --host "${GEOSHARE_HOST:-127.0.0.1}" --port "${GEOSHARE_PORT:-8000}" \
  --workers "${GEOSHARE_WORKERS:-2}" --front "${GEOSHARE_FRONT:-nginx}"
