#!/bin/sh
# Run a command in a private network namespace that has only loopback, so
# that nothing it starts (Ray above all, which otherwise binds the machine's
# own address) can send traffic off the machine. Needs root; without it the
# command runs as it is and the Ray tests skip, saying why.
#
# Usage: .ci/in-loopback-netns.sh COMMAND [ARGS...]
set -eu

if [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null 2>&1 \
        || ! unshare --net true 2>/dev/null; then
    echo "in-loopback-netns: cannot make a network namespace here: running" \
         "in the machine's own; the Ray tests will skip, saying why" >&2
    exec "$@"
fi

exec unshare --net sh -c '
    ip link set lo up || exit 2
    if ip -o link show | grep -v ": lo:" | grep -q .; then
        echo "in-loopback-netns: interfaces besides lo; refusing" >&2
        exit 2
    fi
    exec "$@"
' in-loopback-netns "$@"
