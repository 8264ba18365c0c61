#!/bin/sh
# Release-directory deploys, the classic layout of Capistrano-style tools:
#
#   ROOT/INSTANCE/releases/VERSION/   one folder per deployed version
#   ROOT/INSTANCE/current             symlink to the live release
#
# Usage: release.sh deploy ROOT INSTANCE VERSION   unpack VERSION, then switch atomically
#        release.sh version ROOT INSTANCE          print the live version (nothing if none)
#        release.sh health ROOT INSTANCE           exit 0 when the live release looks complete
#
# The switch renames a new symlink over `current` (rename(2) is atomic), so a reader
# sees either the old release or the new one, never a missing link.
set -eu

action=$1
root=$2
instance=$3
dir="$root/$instance"

case "$action" in
deploy)
    version=$4
    mkdir -p "$dir/releases/$version"
    printf '%s\n' "$version" > "$dir/releases/$version/VERSION"
    ln -sfn "releases/$version" "$dir/current.new"
    mv -T "$dir/current.new" "$dir/current"
    ;;
version)
    if [ -f "$dir/current/VERSION" ]; then
        cat "$dir/current/VERSION"
    fi
    ;;
health)
    test -f "$dir/current/VERSION"
    ;;
*)
    echo "release.sh: unknown action '$action' (expected deploy, version or health)" >&2
    exit 2
    ;;
esac
