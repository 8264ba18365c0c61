#!/bin/sh
# A router for the command target whose state is plain files, so tests can read it.
#
#   STATE/active   the slot that serves traffic (missing before the first switch)
#   STATE/weight   "SLOT WEIGHT": the share sent to the other slot (missing when none)
#   STATE/log      one line per change, oldest first
#
# Usage: router.sh STATE active_slot | switch SLOT | set_weight SLOT WEIGHT
#
# Failures on request: FAIL_SWITCH lists the slots that a switch to fails for, and
# FAIL_WEIGHT the weights that set_weight fails for (space-separated).
set -eu

state=$1
action=$2

listed() {
    for item in $1; do
        if [ "$item" = "$2" ]; then
            return 0
        fi
    done
    return 1
}

case "$action" in
active_slot)
    if [ -f "$state/active" ]; then
        cat "$state/active"
    fi
    ;;
switch)
    slot=$3
    if listed "${FAIL_SWITCH:-}" "$slot"; then
        echo "switch $slot failed" >> "$state/log"
        echo "router.sh: injected failure of the switch to $slot" >&2
        exit 1
    fi
    printf '%s\n' "$slot" > "$state/active"
    rm -f "$state/weight"
    echo "switch $slot" >> "$state/log"
    ;;
set_weight)
    slot=$3
    weight=$4
    if listed "${FAIL_WEIGHT:-}" "$weight"; then
        echo "set_weight $slot $weight failed" >> "$state/log"
        echo "router.sh: injected failure of set_weight $weight" >&2
        exit 1
    fi
    printf '%s %s\n' "$slot" "$weight" > "$state/weight"
    echo "set_weight $slot $weight" >> "$state/log"
    ;;
*)
    echo "router.sh: unknown action '$action' (expected active_slot, switch or set_weight)" >&2
    exit 2
    ;;
esac
