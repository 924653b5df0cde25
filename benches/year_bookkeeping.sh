#!/usr/bin/env bash
# A year of bookkeeping at 1,000 tenants polled every five minutes (most quiet, some with
# alerts): the size of what the store keeps besides alerts after the service's daily retention.
# See examples/year_bookkeeping.rs for what is simulated and how. Not part of CI.
#
#   benches/year_bookkeeping.sh [TENANTS] [DAYS]      (default 1000 365)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/mde-alerts-year.XXXXXX)
trap 'rm -rf "$work"' EXIT
cargo build --quiet --example year_bookkeeping
target/debug/examples/year_bookkeeping "$work" "${1:-1000}" "${2:-365}"
