#!/bin/sh
# Release-directory deploys for the command target, with failures injected on request.
#
#   ROOT/INSTANCE/releases/VERSION/VERSION   one folder per deployed version
#   ROOT/INSTANCE/current                    symlink to the live release, switched atomically
#   ROOT/INSTANCE/history                    one line per deploy or removal, oldest first
#
# Usage: release.sh deploy ROOT INSTANCE VERSION
#        release.sh version ROOT INSTANCE          print the live version (nothing if none)
#        release.sh health ROOT INSTANCE           exit 0 when the live release is healthy
#        release.sh remove ROOT INSTANCE VERSION   delete VERSION, and `current` if it is live
#
# Failures come from environment variables that hold space-separated INSTANCE@VERSION
# shell patterns ("*@1.1.0" matches every instance):
#   FAIL_DEPLOY  deploy exits 1 before it switches `current`
#   HANG_DEPLOY  deploy starts `sleep 60`, writes its pid to ROOT/INSTANCE.hanging and
#                waits for it, before it switches `current`
#   UNHEALTHY    health exits 1 while the live release matches
set -eu
# The patterns contain `*`, which must not expand to file names.
set -f

action=$1
root=$2
instance=$3
dir="$root/$instance"

matches() {
    for pattern in $1; do
        case "$2" in
        $pattern) return 0 ;;
        esac
    done
    return 1
}

live_version() {
    if [ -f "$dir/current/VERSION" ]; then
        cat "$dir/current/VERSION"
    fi
}

case "$action" in
deploy)
    version=$4
    mkdir -p "$dir"
    if matches "${FAIL_DEPLOY:-}" "$instance@$version"; then
        echo "deploy $version failed" >> "$dir/history"
        echo "release.sh: injected deploy failure: $instance@$version" >&2
        exit 1
    fi
    if matches "${HANG_DEPLOY:-}" "$instance@$version"; then
        echo "deploy $version hanging" >> "$dir/history"
        sleep 60 &
        echo $! > "$root/$instance.hanging.tmp"
        mv "$root/$instance.hanging.tmp" "$root/$instance.hanging"
        wait $!
        exit 1
    fi
    mkdir -p "$dir/releases/$version"
    printf '%s\n' "$version" > "$dir/releases/$version/VERSION"
    ln -sfn "releases/$version" "$dir/current.new"
    mv -T "$dir/current.new" "$dir/current"
    echo "deployed $version" >> "$dir/history"
    ;;
version)
    live_version
    ;;
health)
    live=$(live_version)
    if [ -z "$live" ]; then
        echo "release.sh: $instance has no live release" >&2
        exit 1
    fi
    if matches "${UNHEALTHY:-}" "$instance@$live"; then
        echo "release.sh: injected health failure: $instance@$live" >&2
        exit 1
    fi
    ;;
remove)
    version=$4
    if [ "$(readlink "$dir/current" 2>/dev/null || true)" = "releases/$version" ]; then
        rm "$dir/current"
    fi
    rm -rf "$dir/releases/$version"
    echo "removed $version" >> "$dir/history"
    ;;
*)
    echo "release.sh: unknown action '$action' (expected deploy, version, health or remove)" >&2
    exit 2
    ;;
esac
