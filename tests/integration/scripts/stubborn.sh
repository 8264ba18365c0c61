#!/bin/sh
# release.sh with deploys that outlive shipline, as a slow deploy command does.
#
# Usage: stubborn.sh ACTION ROOT INSTANCE [VERSION], as release.sh.
#
# A deploy whose INSTANCE@VERSION matches a pattern of STUBBORN (space-separated shell
# patterns) writes its process id to ROOT/INSTANCE.pid, then waits until the file named
# by GATE exists before it runs release.sh. Unlike gated.sh it keeps waiting after
# shipline, its parent, is gone. Other actions run release.sh at once. When
# STUBBORN_TERM names a file, a matching deploy ignores SIGTERM and creates that file
# when it gets one, as a deploy that cannot be interrupted halfway does.
set -eu
set -f

here=$(dirname "$0")

if [ "$1" = deploy ]; then
    for pattern in ${STUBBORN:-}; do
        case "$3@$4" in
        $pattern)
            mkdir -p "$2"
            if [ -n "${STUBBORN_TERM:-}" ]; then
                trap 'touch "$STUBBORN_TERM"' TERM
                # Once shipline is killed, nothing reads the output pipes, and the
                # shell's "Terminated" note for its sleep would end it with SIGPIPE.
                exec >/dev/null 2>&1
            fi
            echo $$ > "$2/$3.pid.tmp"
            mv "$2/$3.pid.tmp" "$2/$3.pid"
            while [ ! -e "$GATE" ]; do
                # SIGTERM to the process group also ends this sleep.
                sleep 0.02 || true
            done
            ;;
        esac
    done
fi
exec sh "$here/release.sh" "$@"
