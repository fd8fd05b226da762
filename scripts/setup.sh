#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine (run as root): PostgreSQL 15 + PostGIS 3,
# the geoshare database and role, and a virtualenv with the project installed.
# Usage: scripts/setup.sh [--test]   (--test also installs what the test suite needs)
set -euo pipefail
cd "$(dirname "$0")/.."
WITH_TEST=0
[[ "${1:-}" == "--test" ]] && WITH_TEST=1

PGVER=15
DB_NAME=${GEOSHARE_DB_NAME:-geoshare}
DB_USER=${GEOSHARE_DB_USER:-geoshare}
DB_PASS=${GEOSHARE_DB_PASSWORD:-geoshare}

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

need=()
# nginx: the front cache of `geoshare serve --front nginx` (the demo runs it)
for p in postgresql-$PGVER postgresql-$PGVER-postgis-3 postgresql-contrib nginx; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [[ $WITH_TEST == 1 ]]; then
  # GDAL tools read exports back; Chromium drives the portal's browser tests; a CJK font draws labels
  for p in gdal-bin chromium chromium-driver fonts-wqy-microhei; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
  done
fi
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then need+=(python3-venv); fi
if (( ${#need[@]} )); then
  log "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -q "^$PGVER main$"; then
  log "creating PostgreSQL cluster $PGVER/main"
  pg_createcluster --locale C.UTF-8 $PGVER main >/dev/null
fi
if ! pg_lsclusters -h | awk '$1=="'$PGVER'" && $2=="main" {print $4}' | grep -q online; then
  log "starting PostgreSQL $PGVER/main"
  pg_ctlcluster --skip-systemctl-redirect $PGVER main start
fi
for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done

psql_su() { su postgres -c "psql -v ON_ERROR_STOP=1 -qAtX $*"; }
if [[ -z "$(psql_su "-c \"select 1 from pg_roles where rolname='$DB_USER'\"")" ]]; then
  log "creating role $DB_USER"
  psql_su "-c \"create role $DB_USER login createdb password '$DB_PASS'\""
fi
# A template with the extensions lets the (non-superuser) role create databases, e.g. for tests.
if [[ -z "$(psql_su "-c \"select 1 from pg_database where datname='geoshare_template'\"")" ]]; then
  log "creating template database geoshare_template"
  psql_su "-c \"create database geoshare_template owner $DB_USER template template0 encoding 'UTF8' lc_collate 'C.UTF-8' lc_ctype 'C.UTF-8'\""
  psql_su "-d geoshare_template -c \"create extension if not exists postgis; create extension if not exists pg_trgm; alter database geoshare_template set jit = off; update pg_database set datistemplate = true where datname = 'geoshare_template'\""
fi
if [[ -z "$(psql_su "-c \"select 1 from pg_database where datname='$DB_NAME'\"")" ]]; then
  log "creating database $DB_NAME"
  psql_su "-c \"create database $DB_NAME owner $DB_USER template geoshare_template\""
  psql_su "-c \"alter database $DB_NAME set jit = off\""
fi

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  log "creating virtualenv .venv"
  $PY -m venv .venv
fi
stamp=$(cat pyproject.toml | sha1sum | cut -c1-16)-$WITH_TEST
if [[ "$(cat .venv/.geoshare-installed 2>/dev/null)" != "$stamp" ]]; then
  log "installing the project into .venv (first run takes a minute)"
  extras=""
  [[ $WITH_TEST == 1 ]] && extras="[test]"
  if ! { .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q -e ".$extras"; } \
      > .venv/pip-install.log 2>&1; then
    cat .venv/pip-install.log >&2
    exit 1
  fi
  echo "$stamp" > .venv/.geoshare-installed
fi
if [[ $WITH_TEST == 1 ]]; then
  # the clients' own conformance tools, in a venv of their own (their pins are not the app's):
  # the OGC API Features black-box suite and schemathesis, run by tests/e2e/test_ogc_clients.py
  CLIENT_TOOLS="ogctests==0.1.15 schemathesis==4.32.5"
  if [[ "$(cat .venv-clients/.installed 2>/dev/null)" != "$CLIENT_TOOLS" ]]; then
    log "installing client conformance tools into .venv-clients"
    rm -rf .venv-clients
    $PY -m venv .venv-clients
    if ! .venv-clients/bin/pip install -q $CLIENT_TOOLS > .venv-clients/pip-install.log 2>&1; then
      cat .venv-clients/pip-install.log >&2
      exit 1
    fi
    echo "$CLIENT_TOOLS" > .venv-clients/.installed
  fi
fi
log "ready"
