#!/usr/bin/env bash
# Quick start: install PostgreSQL if it is missing, build pgfork, run `pgfork demo`.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pg=1
for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/postgres" ] && need_pg=0
done
command -v pg_config >/dev/null && need_pg=0
# As root the demo puts its store on a small XFS loop image (copy-on-write branches):
# that needs mkfs.xfs.
need_xfs=0
if [ "$(id -u)" = 0 ] && ! command -v mkfs.xfs >/dev/null; then need_xfs=1; fi
if [ "$need_xfs" = 1 ] && command -v apt-get >/dev/null; then
    echo "installing xfsprogs (for the copy-on-write part of the demo)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xfsprogs >/dev/null
fi
if [ "$need_pg" = 1 ]; then
    echo "PostgreSQL is not installed; installing it with apt-get (Debian/Ubuntu)."
    sudo=""
    [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql postgresql-contrib git >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "error: cargo is not installed: install Rust from https://rustup.rs, then run this again" >&2
    exit 1
fi
target_dir="${CARGO_TARGET_DIR:-target}"
[ -x "$target_dir/release/pgfork" ] || echo "building pgfork (the first build takes about 4 minutes on two cores; later ones seconds)"
cargo build --release -p pgfork
exec "$target_dir/release/pgfork" demo "$@"
