#!/bin/sh
# A private Docker engine for the tests: Debian's dockerd on its own unix
# socket, data and exec roots under DIR, no iptables, no bridge (loopback
# and unix sockets only), cgroupfs, and a busybox image built from Debian's
# busybox-static with `docker import` (no registry).
#
# Usage:
#   scripts/engine.sh start DIR   start it; prints DOCKER_HOST=unix://DIR/docker.sock
#   scripts/engine.sh stop DIR    remove its containers, stop it by the PIDs it
#                                 recorded, unmount what it left under DIR
#
# DIR should be short (unix socket paths hold at most 107 bytes; containerd's
# sockets live under DIR/exec), e.g. `mktemp -d /tmp/sw-engine.XXXXXX`.
# Files in DIR: docker.sock, dockerd.log, engine.pid (dockerd's PID as
# started here), data/, exec/ (containerd's PID in exec/containerd/containerd.pid),
# rootfs/ (the image's files), daemon.json (empty: the host's
# /etc/docker/daemon.json is not read).
#
# Exit status: 0 done; 77 this machine cannot run dockerd (not root, dockerd
# or a static busybox missing), with the reason on stderr; 1 anything else.
# The image is local/busybox:latest: /bin/busybox with sh, httpd, sleep,
# cat, yes, dd, true applets, and empty /www and /tmp.
set -eu

IMAGE=local/busybox:latest
BUSYBOX=${BUSYBOX:-/bin/busybox}
START_TIMEOUT=${ENGINE_START_TIMEOUT:-60}
STOP_TIMEOUT=${ENGINE_STOP_TIMEOUT:-30}

die() { echo "engine.sh: $*" >&2; exit 1; }
cannot() { echo "engine.sh: cannot run a Docker engine here: $*" >&2; exit 77; }

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }

[ $# -eq 2 ] || usage
cmd=$1
DIR=$2
case "$DIR" in /*) ;; *) DIR="$(pwd)/$DIR" ;; esac
SOCK="$DIR/docker.sock"
export DOCKER_HOST="unix://$SOCK"

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

ping_ok() { curl -sf -m 2 --unix-socket "$SOCK" http://d/_ping >/dev/null 2>&1; }

# Waits up to $2 seconds for PID $1 to exit; returns 1 if it is still there.
wait_gone() {
    i=0
    while alive "$1"; do
        i=$((i + 1))
        [ "$i" -gt $(($2 * 10)) ] && return 1
        sleep 0.1
    done
    return 0
}

# Mount points at or under DIR, deepest first.
mounts_under() {
    awk -v d="$DIR" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

do_stop() {
    [ -d "$DIR" ] || return 0
    # Containers first, so their shims, cgroups and overlay mounts go with them.
    if [ -S "$SOCK" ] && ping_ok; then
        ids=$(docker ps -aq 2>/dev/null || true)
        if [ -n "$ids" ]; then
            # shellcheck disable=SC2086
            docker rm -f $ids >/dev/null 2>&1 || echo "engine.sh: could not remove containers $ids" >&2
        fi
    fi
    pid=$(cat "$DIR/engine.pid" 2>/dev/null || true)
    cpid=$(cat "$DIR/exec/containerd/containerd.pid" 2>/dev/null || true)
    if alive "$pid"; then
        kill -TERM "$pid"
        if ! wait_gone "$pid" "$STOP_TIMEOUT"; then
            echo "engine.sh: dockerd $pid did not stop in ${STOP_TIMEOUT}s: SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            wait_gone "$pid" 5 || true
        fi
    fi
    # dockerd stops the containerd it started; if dockerd died first, stop it
    # here (by the PID containerd recorded).
    if alive "$cpid" && grep -q containerd "/proc/$cpid/comm" 2>/dev/null; then
        kill -TERM "$cpid"
        wait_gone "$cpid" 10 || kill -KILL "$cpid" 2>/dev/null || true
    fi
    rm -f "$DIR/engine.pid"
    # dockerd leaves exec/netns/default (a bind mount of its network
    # namespace) and, if it died, container mounts.
    for m in $(mounts_under); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "engine.sh: cannot unmount $m" >&2
    done
    left=$(mounts_under)
    [ -z "$left" ] || die "mounts left under $DIR: $left"
}

do_start() {
    [ "$(id -u)" = 0 ] || cannot "dockerd needs root (running as uid $(id -u))"
    command -v dockerd >/dev/null 2>&1 || cannot "dockerd not found (scripts/install-deps.sh installs docker.io)"
    command -v docker >/dev/null 2>&1 || cannot "the docker client is not found (docker.io)"
    [ -x "$BUSYBOX" ] || cannot "$BUSYBOX not found (busybox-static)"
    if ldd "$BUSYBOX" >/dev/null 2>&1; then
        cannot "$BUSYBOX is dynamically linked: the image needs busybox-static"
    fi
    [ ${#SOCK} -lt 100 ] || die "DIR is too long for unix sockets: $DIR"
    if [ -f "$DIR/engine.pid" ] && alive "$(cat "$DIR/engine.pid")"; then
        die "an engine already runs for $DIR (PID $(cat "$DIR/engine.pid"))"
    fi
    mkdir -p "$DIR/data" "$DIR/exec"
    echo '{}' >"$DIR/daemon.json"

    rm -rf "$DIR/rootfs"
    mkdir -p "$DIR/rootfs/bin" "$DIR/rootfs/tmp" "$DIR/rootfs/www"
    cp "$BUSYBOX" "$DIR/rootfs/bin/busybox"
    for a in sh httpd sleep cat yes dd true; do ln -s busybox "$DIR/rootfs/bin/$a"; done

    storage=""
    [ -z "${ENGINE_STORAGE_DRIVER:-}" ] || storage="--storage-driver=$ENGINE_STORAGE_DRIVER"
    # shellcheck disable=SC2086
    dockerd -H "unix://$SOCK" --data-root "$DIR/data" --exec-root "$DIR/exec" \
        --pidfile "$DIR/dockerd.pid" --config-file "$DIR/daemon.json" \
        --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
        --exec-opt native.cgroupdriver=cgroupfs $storage \
        >"$DIR/dockerd.log" 2>&1 &
    pid=$!
    echo "$pid" >"$DIR/engine.pid"

    i=0
    until ping_ok; do
        if ! alive "$pid"; then
            tail -n 20 "$DIR/dockerd.log" >&2 || true
            do_stop
            die "dockerd exited during start (log: $DIR/dockerd.log)"
        fi
        i=$((i + 1))
        if [ "$i" -gt $((START_TIMEOUT * 5)) ]; then
            tail -n 20 "$DIR/dockerd.log" >&2 || true
            do_stop
            die "dockerd did not answer /_ping within ${START_TIMEOUT}s"
        fi
        sleep 0.2
    done
    if ! tar -C "$DIR/rootfs" -c . | docker import - "$IMAGE" >/dev/null; then
        do_stop
        die "docker import of $IMAGE failed"
    fi
    echo "DOCKER_HOST=unix://$SOCK"
}

case "$cmd" in
start) do_start ;;
stop) do_stop ;;
*) usage ;;
esac
