#!/bin/sh
# release.sh with deploys that wait for a file, so a test can hold a run mid-deploy.
#
# Usage: gated.sh ACTION ROOT INSTANCE [VERSION], as release.sh.
#
# A deploy whose INSTANCE@VERSION matches a pattern of GATED (space-separated shell
# patterns, as in release.sh) creates ROOT/INSTANCE.waiting, then waits until the file
# named by GATE exists before it runs release.sh. When shipline, its parent, is gone
# (a test killed it), the deploy exits 1 without changing anything. Other actions run
# release.sh at once.
set -eu
set -f

here=$(dirname "$0")

if [ "$1" = deploy ]; then
    for pattern in ${GATED:-}; do
        case "$3@$4" in
        $pattern)
            mkdir -p "$2"
            : > "$2/$3.waiting"
            while [ ! -e "$GATE" ]; do
                kill -0 "$PPID" 2>/dev/null || exit 1
                sleep 0.02
            done
            ;;
        esac
    done
fi
exec sh "$here/release.sh" "$@"
