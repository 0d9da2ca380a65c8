#!/bin/sh
# Makes the debian:bookworm-slim base image locally, without a registry:
# `debootstrap --variant=minbase bookworm` from the Debian mirror this
# machine's apt uses, trimmed the way the official slim image is (no docs,
# man pages, info, locales; no apt lists or caches; dpkg told to keep it that
# way for packages installed later), then `docker import`ed into the engine
# that DOCKER_HOST names.
#
# Usage: scripts/image-base.sh [TAG]          (default TAG: debian:bookworm-slim)
#   DOCKER_HOST   the engine to import into (required, e.g. unix:///tmp/x/docker.sock)
#   MIRROR        the Debian mirror (default: the first URIs: line of
#                 /etc/apt/sources.list.d/debian.sources, else http://deb.debian.org/debian)
#   BASE_CACHE    the cached root filesystem tarball
#                 (default: build/image-base/bookworm-minbase.tar under the repo)
#
# The trimmed tarball is cached: a second run only imports it (seconds).
# Delete the cache file to make it again. Needs root (debootstrap) and the
# debootstrap package (scripts/install-deps.sh installs it).
# Exit status: 0 done (prints the image ID); 77 debootstrap or root missing;
# 1 anything else.
set -eu

TAG=${1:-debian:bookworm-slim}
SUITE=bookworm
REPO="$(cd "$(dirname "$0")/.." && pwd)"
CACHE=${BASE_CACHE:-$REPO/build/image-base/bookworm-minbase.tar}

die() { echo "image-base.sh: $*" >&2; exit 1; }
cannot() { echo "image-base.sh: cannot make the base image here: $*" >&2; exit 77; }

[ -n "${DOCKER_HOST:-}" ] || die "DOCKER_HOST is not set (which engine to import into?)"
command -v docker >/dev/null 2>&1 || cannot "the docker client is not found"

if [ -z "${MIRROR:-}" ]; then
    MIRROR=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi
# Security updates live next to the main archive on deb.debian.org-style mirrors.
SECURITY_MIRROR=${SECURITY_MIRROR:-$(echo "$MIRROR" | sed 's,/debian/*$,/debian-security,')}

make_rootfs() {
    [ "$(id -u)" = 0 ] || cannot "debootstrap needs root (running as uid $(id -u))"
    command -v debootstrap >/dev/null 2>&1 || cannot "debootstrap not found (scripts/install-deps.sh installs it)"
    mkdir -p "$(dirname "$CACHE")"
    work=$(mktemp -d "$(dirname "$CACHE")/rootfs.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$work' '$CACHE.tmp'" EXIT INT TERM
    echo "image-base.sh: debootstrap --variant=minbase $SUITE from $MIRROR" >&2
    if ! debootstrap --variant=minbase "$SUITE" "$work" "$MIRROR" >"$work.log" 2>&1; then
        tail -n 20 "$work.log" >&2
        die "debootstrap failed (log: $work.log)"
    fi
    rm -f "$work.log"

    # Trim like the official slim image: dpkg excludes docs, man pages,
    # info and locales now and for every package installed later.
    cat >"$work/etc/dpkg/dpkg.cfg.d/docker-slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    find "$work/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
    find "$work/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
    for d in man groff info lintian linda; do
        rm -rf "$work/usr/share/$d" && mkdir -p "$work/usr/share/$d"
    done
    find "$work/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} + 2>/dev/null || true
    # apt: no caches, no translations, no recommends/suggests kept around.
    cat >"$work/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$work/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Acquire::GzipIndexes "true";' >"$work/etc/apt/apt.conf.d/docker-gzip-indexes"
    # The same suites as the official image (and this machine's apt).
    rm -f "$work/etc/apt/sources.list"
    cat >"$work/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -rf "$work/var/lib/apt/lists"/* "$work/var/cache/apt"/*.bin \
        "$work/var/cache/apt/archives"/*.deb "$work/var/log"/*.log \
        "$work/var/log/apt"/* "$work/var/cache/debconf"/*-old "$work/var/lib/dpkg"/*-old \
        "$work/tmp"/* 2>/dev/null || true
    # The engine provides /dev, /proc, /sys, resolv.conf, hostname, hosts.
    rm -rf "$work/dev"/* "$work/proc"/* "$work/sys"/*
    rm -f "$work/etc/resolv.conf" "$work/etc/hostname"
    : >"$work/etc/hosts"

    tar --numeric-owner --sort=name -C "$work" -cf "$CACHE.tmp" .
    mv -f "$CACHE.tmp" "$CACHE"
    rm -rf "$work"
    trap - EXIT INT TERM
}

if [ ! -s "$CACHE" ]; then
    make_rootfs
else
    echo "image-base.sh: using the cached root filesystem $CACHE" >&2
fi

docker import -c 'CMD ["bash"]' -m "debootstrap --variant=minbase $SUITE, trimmed (scripts/image-base.sh)" \
    "$CACHE" "$TAG" || die "docker import of $TAG failed"
