#!/usr/bin/env bash
# Set up (PostgreSQL/PostGIS, GDAL tools, venv) and run the test suite against a real PostGIS.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
.venv/bin/ruff check geoshare layers geocode tests benchmarks
exec .venv/bin/pytest "$@"
