#!/bin/sh
# Run the Ray tests (pytest -m ray) inside a private network namespace that
# has only loopback, so that Ray cannot send traffic anywhere else.
#
# Usage: tests/integrations/ray_serve/run_in_netns.sh [pytest arguments]
# Needs root (unshare --net) and the venv at .venv (or PYTHON=/path/to/python).
# Extra arguments go to pytest, e.g. a test path or -k EXPR.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
python=${PYTHON:-"$root/.venv/bin/python"}

if [ "$(id -u)" -ne 0 ]; then
    echo "run_in_netns.sh: needs root to make a network namespace (unshare --net)" >&2
    exit 2
fi
for tool in unshare ip; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "run_in_netns.sh: '$tool' not found (Debian: util-linux, iproute2)" >&2
        exit 2
    fi
done
if [ ! -x "$python" ]; then
    echo "run_in_netns.sh: no Python at $python (make the venv, or set PYTHON)" >&2
    exit 2
fi

export RAY_USAGE_STATS_ENABLED=0
export BENTOML_DO_NOT_TRACK=true
cd "$root"

# Inside: bring loopback up, refuse to go on if any other interface exists,
# then hand over to pytest.
exec unshare --net sh -c '
    ip link set lo up || exit 2
    if ip -o link show | grep -v ": lo:" | grep -q .; then
        echo "run_in_netns.sh: the namespace has interfaces besides lo" >&2
        exit 2
    fi
    python=$1
    shift
    exec "$python" -m pytest -m ray "$@"
' run_in_netns "$python" "$@"
