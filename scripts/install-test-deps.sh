#!/usr/bin/env bash
# What the tests need beyond Python: the FHIR test server (Node, from the npm lock file) and
# Debian's Chromium for the browser tests (never a downloaded browser).
set -euo pipefail
cd "$(dirname "$0")/.."
npm ci --prefix tests/fhir_server --no-audit --no-fund
if [ ! -x /usr/bin/chromium ]; then
  SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $SUDO apt-get update
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
fi
