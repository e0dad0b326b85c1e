#!/usr/bin/env bash
# The whole test suite: unit tests and the integration tests that drive the real
# pgfork binary against real PostgreSQL and git.
#
# As root it makes ONE XFS reflink loop image for the run (the copy-on-write paths),
# shares it between all tests through PGFORK_TEST_XFS, and always unmounts it. The copy
# fallback runs on the plain disk. At the end it prints which storage paths ran; a path
# that could not run is printed as NOT RUN, never skipped silently.
set -uo pipefail
cd "$(dirname "$0")/.."

report=$(mktemp /tmp/pgfork-test-report.XXXXXX)
export PGFORK_TEST_REPORT="$report"
xfs_dir=""
xfs_img=""

cleanup() {
    if [ -n "$xfs_dir" ]; then
        # Nothing may keep the image busy: stop leftovers of failed tests first.
        pkill -9 -f -- "$xfs_dir" 2>/dev/null || true
        sleep 0.3
        umount "$xfs_dir" 2>/dev/null || umount -l "$xfs_dir" 2>/dev/null || true
        rm -f "$xfs_img"
        rmdir "$xfs_dir" 2>/dev/null || true
    fi
    rm -f "$report"
}
trap cleanup EXIT

if [ "$(id -u)" = 0 ] && command -v mkfs.xfs >/dev/null; then
    xfs_dir=$(mktemp -d /tmp/pgfork-test-xfs.XXXXXX)
    xfs_img="$xfs_dir.img"
    truncate -s 40G "$xfs_img"
    if mkfs.xfs -q -f -m reflink=1 "$xfs_img" && mount -o loop "$xfs_img" "$xfs_dir"; then
        export PGFORK_TEST_XFS="$xfs_dir"
        echo "reflink store: XFS loop image mounted at $xfs_dir"
    else
        echo "could not make the XFS loop image: the reflink paths will report NOT RUN" >&2
        rm -f "$xfs_img"; rmdir "$xfs_dir" 2>/dev/null; xfs_dir=""
    fi
else
    echo "not root (or no mkfs.xfs): the reflink paths will report NOT RUN; run as root for all storage paths" >&2
fi

log=$(mktemp /tmp/pgfork-test-log.XXXXXX)
cargo test --workspace --locked --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

echo
echo "storage paths (from the integration tests):"
if [ -s "$report" ]; then
    grep -E '^storage ' "$report" | sed -E 's/ \(.*//' | sort | uniq -c | sed 's/^/  /'
    grep -vE '^storage ' "$report" | sed 's/^/  /'
else
    echo "  (no integration test reported)"
fi
# One closing line for the whole run (cargo prints one per test binary).
summary=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } } END { printf "%d passed, %d failed", p, f }' "$log")
rm -f "$log"
if [ -s "$report" ] && grep -q "NOT RUN" "$report"; then
    echo "  some checks did not run: each line above says how to enable it; as root, \`bash .ci/run\` installs everything and runs them all"
fi
echo
echo "tests: $summary"
exit $status
