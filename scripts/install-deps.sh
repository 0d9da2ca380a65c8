#!/bin/sh
# Installs every Debian package that sidewatch's build, tests and benchmarks
# need, including the real peers the integration tests run against
# (Prometheus + promtool, Alertmanager, node_exporter, Docker, busybox).
#
# Usage: scripts/install-deps.sh [--check]
#   --check  only report missing packages (exit 1 if any), install nothing.
set -eu

PACKAGES="
build-essential pkg-config clang libclang-rt-14-dev
libcurl4-openssl-dev libmicrohttpd-dev libyaml-dev libgnutls28-dev libcrypt-dev apache2-utils
libprotobuf-c-dev protobuf-c-compiler libsqlite3-dev sqlite3 libsnappy-dev
libpcre2-dev libjansson-dev libcmocka-dev zlib1g-dev libssl-dev
prometheus prometheus-alertmanager prometheus-node-exporter
docker.io busybox-static debootstrap
python3 python3-pytest python3-pytest-xdist python3-requests python3-yaml docker-compose python3-fastapi python3-uvicorn
python3-prometheus-client python3-redis redis-server nginx
curl procps openssl
"

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi
if [ "${1:-}" = "--check" ]; then
    echo "missing packages:$missing" >&2
    exit 1
fi

echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Packages such as prometheus and docker.io ship services; the tests start
# their own instances on chosen ports, so keep the package scripts from
# starting system-wide daemons while we install.
policy=/usr/sbin/policy-rc.d
made_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod 755 "$policy"
    made_policy=1
fi
cleanup() { if [ -n "$made_policy" ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT INT TERM

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q || true
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
