#!/bin/sh
# Install the Debian packages the tests (or benchmarks) need when missing:
# PostgreSQL (a real server for the PostgreSQL sink tests), Chromium (renders
# the HTML report), wrk (benchmarks only: pass "bench"). Needs root to
# install; without root it says what is missing and goes on, and the tests
# that need a missing program say why they skip (under CI=true a skipped
# sink test fails the run).
set -eu

missing=""
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$missing postgresql"
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v unshare >/dev/null 2>&1 || missing="$missing util-linux"
command -v ip >/dev/null 2>&1 || missing="$missing iproute2"
command -v openssl >/dev/null 2>&1 || missing="$missing openssl"
if [ "${1:-}" = "bench" ]; then
    command -v wrk >/dev/null 2>&1 || missing="$missing wrk"
fi
[ -n "$missing" ] || exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: not root, cannot install:$missing" >&2
    exit 0
fi
echo "system-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The package's own cluster is not used: the tests start their own server.
apt-get install -y -qq $missing >/dev/null
