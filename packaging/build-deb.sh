#!/usr/bin/env bash
# Builds a Debian package: the binary, the systemd units, sysusers/tmpfiles, the example config,
# the man pages (the main page and one per subcommand it names) and shell completions (all
# generated from the CLI definition, so they never drift from it). Needs cargo-deb 3 (`cargo
# install cargo-deb`) and binutils: the packaged binary is stripped, its line tables going to
# target/debian/mde-alerts-dbgsym_*.ddeb (Cargo.toml's [package.metadata.deb]). Check:
# dpkg-deb -x target/debian/mde-alerts_*.deb /tmp/x && file /tmp/x/usr/bin/mde-alerts  (says
# "stripped").
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin mde-alerts
mkdir -p target/assets
bin=target/release/mde-alerts
rm -rf target/assets/man
"$bin" manpage --dir target/assets/man
"$bin" completions bash > target/assets/mde-alerts.bash
"$bin" completions zsh > target/assets/_mde-alerts
"$bin" completions fish > target/assets/mde-alerts.fish
cargo deb --no-build "$@"
