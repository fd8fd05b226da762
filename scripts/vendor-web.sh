#!/usr/bin/env bash
# Vendor the portal's browser libraries: `npm ci` from geoshare/web/package-lock.json (pinned) in a
# scratch folder, then copy what the service serves into geoshare/web/static/vendor/. The copies are
# committed, so the service runs without npm or internet; re-run this only to change versions.
# Usage: scripts/vendor-web.sh [--glyphs]   (--glyphs also regenerates the glyph PBFs from Noto Sans,
#        which needs freetype-py in .venv: .venv/bin/pip install freetype-py)
set -euo pipefail
cd "$(dirname "$0")/.."
WEB=geoshare/web
VENDOR=$WEB/static/vendor
WITH_GLYPHS=0
[[ "${1:-}" == "--glyphs" ]] && WITH_GLYPHS=1

command -v npm >/dev/null || { echo "npm is needed (Debian: apt-get install -y npm)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp $WEB/package.json $WEB/package-lock.json "$work/"
(cd "$work" && npm ci --no-audit --no-fund --loglevel=error)

mkdir -p $VENDOR
dist="$work/node_modules/maplibre-gl/dist"
cp "$dist/maplibre-gl.js" "$dist/maplibre-gl.css" $VENDOR/
cp "$work/node_modules/maplibre-gl/LICENSE.txt" $VENDOR/LICENSE.maplibre-gl.txt
version=$(node -p "require('$work/node_modules/maplibre-gl/package.json').version")
echo "maplibre-gl $version" > $VENDOR/VERSIONS.txt
echo "vendored maplibre-gl $version into $VENDOR"

if [[ $WITH_GLYPHS == 1 ]]; then
  .venv/bin/python scripts/make-glyphs.py --fonts "$work/node_modules/@fontsource/noto-sans/files"
fi
