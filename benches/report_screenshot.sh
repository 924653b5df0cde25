#!/usr/bin/env bash
# Renders a report HTML file to PNG with headless Chromium, for a visual check.
# Usage: screenshot.sh [REPORT.html] [OUT.png] [WIDTHxHEIGHT]
# Needs Debian's chromium (apt-get install -y chromium). Loads nothing from the network: the
# report is self-contained, and background networking, updates and sync are switched off.
set -euo pipefail
html=${1:-/tmp/report.html}
png=${2:-/tmp/report.png}
size=${3:-1280x2000}
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --hide-scrollbars --user-data-dir="$profile" \
  --screenshot="$png" --window-size="${size/x/,}" "file://$(realpath "$html")" 2>/dev/null
echo "$png"
