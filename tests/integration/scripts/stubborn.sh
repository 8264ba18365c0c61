#!/bin/sh
# release.sh with deploys that outlive shipline, as a slow deploy command does.
#
# Usage: stubborn.sh ACTION ROOT INSTANCE [VERSION], as release.sh.
#
# A deploy whose INSTANCE@VERSION matches a pattern of STUBBORN (space-separated shell
# patterns) writes its process id to ROOT/INSTANCE.pid, then waits until the file named
# by GATE exists before it runs release.sh. Unlike gated.sh it keeps waiting after
# shipline, its parent, is gone. Other actions run release.sh at once.
set -eu
set -f

here=$(dirname "$0")

if [ "$1" = deploy ]; then
    for pattern in ${STUBBORN:-}; do
        case "$3@$4" in
        $pattern)
            mkdir -p "$2"
            echo $$ > "$2/$3.pid.tmp"
            mv "$2/$3.pid.tmp" "$2/$3.pid"
            while [ ! -e "$GATE" ]; do
                sleep 0.02
            done
            ;;
        esac
    done
fi
exec sh "$here/release.sh" "$@"
