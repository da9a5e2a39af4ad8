#!/usr/bin/env bash
# Build the trading page (docs/web.md): the sources in web/ -> the minified page in
# gateway/transport/web-static/, which `alatau serve` serves and git keeps, with a manifest
# recording which sources it was built from (tests/test_web_assets.py fails when stale).
# Needs Node.js 20+ and npm; installs web/node_modules from package-lock.json when needed.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
fi
npm run --silent typecheck
npm test --silent
npm run --silent build
python3 manifest.py write
echo "built: $(cd .. && ls gateway/transport/web-static gateway/transport/web-static/assets | tr '\n' ' ')"
