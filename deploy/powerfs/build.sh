#!/usr/bin/env bash
# Builds deploy/powerfs/build/impulse-powerfs, the power-cut file system of the chaos tool's power
# nemesis and of its tests. It needs a C compiler, pkg-config and libfuse3 (Debian: fuse3 and
# libfuse3-dev); when they are missing and this runs as root with apt-get, it installs them, so
# that `npm ci && npm test` works on a fresh machine.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

missing() {
  ! command -v cc >/dev/null 2>&1 || ! command -v pkg-config >/dev/null 2>&1 ||
    ! pkg-config --exists fuse3 || ! command -v fusermount3 >/dev/null 2>&1
}

if missing; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "powerfs: installing fuse3, libfuse3-dev, pkg-config and gcc" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      fuse3 libfuse3-dev pkg-config gcc libc6-dev >/dev/null
  fi
fi
if missing; then
  echo "powerfs: needs a C compiler, pkg-config, fuse3 and libfuse3-dev" \
    "(Debian: apt-get install gcc pkg-config fuse3 libfuse3-dev)" >&2
  exit 1
fi
if [ ! -c /dev/fuse ]; then
  echo "powerfs: /dev/fuse is missing: FUSE is not available on this machine" >&2
  exit 1
fi

mkdir -p "$here/build"
# shellcheck disable=SC2046 # pkg-config prints several flags
cc -O2 -g -Wall -Wextra -Werror -std=gnu11 -o "$here/build/impulse-powerfs.tmp" "$here/powerfs.c" \
  $(pkg-config --cflags --libs fuse3) -lpthread
mv -f "$here/build/impulse-powerfs.tmp" "$here/build/impulse-powerfs"
