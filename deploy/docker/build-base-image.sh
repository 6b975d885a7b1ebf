#!/usr/bin/env bash
# Builds `impulse-base:local`: the smallest image that runs this machine's Node.js, for hosts that
# cannot pull `node:20-slim` (no registry reachable). It holds the `node` binary, the shared
# libraries `ldd` lists for it (and for the native add-ons of the production dependencies), the
# dynamic loader with a loader cache, an `/etc/passwd` with the non-root user `node` (uid 1000, as
# in the official image, so one Dockerfile serves both bases), and `/tmp`. No shell, no package
# manager: the project image only copies files onto it.
#
# Idempotent: when an image with this name already exists and was built from the same node binary,
# nothing is done (IMPULSE_BASE_REBUILD=1 forces a rebuild).
#
# Usage: deploy/docker/build-base-image.sh [image-name]   (default impulse-base:local)
set -euo pipefail

image="${1:-impulse-base:local}"
repository_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

log() { echo "build-base-image: $*" >&2; }
fail() {
  log "FAILED: $*"
  exit 1
}

command -v docker >/dev/null || fail "the docker CLI is not installed"
docker info >/dev/null 2>&1 || fail "cannot reach the Docker engine (is dockerd running? DOCKER_HOST=${DOCKER_HOST:-unset})"
node_binary="$(command -v node)" || fail "node is not on PATH"
node_binary="$(readlink -f "$node_binary")"
node_version="$("$node_binary" --version)"
case "$node_version" in
  v20.*) ;;
  *) fail "node $node_version found; the project targets Node.js 20" ;;
esac
command -v ldd >/dev/null || fail "ldd is not installed"
command -v ldconfig >/dev/null || [ -x /sbin/ldconfig ] || fail "ldconfig is not installed"

# The label lets a second run recognise an image built from the very same binary.
node_checksum="$(sha256sum "$node_binary" | cut -d' ' -f1)"
if [ "${IMPULSE_BASE_REBUILD:-0}" != "1" ] &&
  [ "$(docker image inspect --format '{{ index .Config.Labels "org.impulse.node-sha256" }}' "$image" 2>/dev/null || true)" = "$node_checksum" ]; then
  log "$image is up to date (node $node_version); nothing to do"
  exit 0
fi

root="$(mktemp -d)"
trap 'rm -rf "$root"' EXIT
log "assembling a root filesystem for node $node_version ($node_binary) in $root"

# The native add-ons the image will load (LevelDB through classic-level) need libraries too; they
# are the same ones node needs today, but listing them keeps the image honest if that changes.
binaries=("$node_binary")
while IFS= read -r addon; do binaries+=("$addon"); done < <(
  find "$repository_root/node_modules" -path '*/prebuilds/linux-x64/*.node' ! -name '*musl*' 2>/dev/null || true
)

libraries=()
for binary in "${binaries[@]}"; do
  # `ldd` prints "name => /path (address)" for libraries and "/path (address)" for the loader;
  # the vDSO has no file and is skipped.
  ldd_output="$(ldd "$binary")" || fail "ldd failed on $binary"
  if grep -q 'not found' <<<"$ldd_output"; then fail "$binary needs a library this machine lacks: $ldd_output"; fi
  while IFS= read -r library; do libraries+=("$library"); done < <(
    awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$ldd_output"
  )
done
mapfile -t libraries < <(printf '%s\n' "${libraries[@]}" | sort -u)
[ "${#libraries[@]}" -gt 0 ] || fail "ldd listed no libraries for $node_binary"

mkdir -p "$root/usr/local/bin" "$root/etc" "$root/tmp" "$root/home/node" "$root/data"
chmod 1777 "$root/tmp"
cp "$node_binary" "$root/usr/local/bin/node"
for library in "${libraries[@]}"; do
  # `--parents` keeps the path the binary was linked against (the loader's path is hard-coded in
  # the ELF header); `-L` copies the file behind a symlink under the symlink's name.
  cp -L --parents "$library" "$root/"
  log "  + $library"
done

# Without a loader cache, ld.so searches only its built-in directories; a cache made for this root
# finds the libraries wherever the host keeps them.
printf '%s\n' "${libraries[@]}" | xargs -n1 dirname | sort -u >"$root/etc/ld.so.conf"
"$(command -v ldconfig || echo /sbin/ldconfig)" -r "$root" || fail "ldconfig could not build the loader cache"

cat >"$root/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
node:x:1000:1000:impulse:/home/node:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$root/etc/group" <<'GROUP'
root:x:0:
node:x:1000:
nogroup:x:65534:
GROUP
# Names in the cluster configuration (network aliases, Kubernetes services) resolve through
# /etc/hosts and DNS; Docker provides both files at run time.
echo 'hosts: files dns' >"$root/etc/nsswitch.conf"
chown -R 1000:1000 "$root/home/node" "$root/data"

log "importing the root filesystem as $image"
tar -C "$root" --numeric-owner -c . |
  docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' \
    --change "ENV NODE_VERSION=${node_version#v}" \
    --change "LABEL org.impulse.node-sha256=$node_checksum" \
    --change "LABEL org.impulse.node-version=$node_version" \
    --change 'CMD ["node"]' \
    - "$image" >/dev/null || fail "docker import failed"

# A base image that cannot start node is worse than none: prove it works before anyone builds on it.
smoke="$(docker run --rm --user 1000:1000 "$image" node -e 'console.log(process.version + " " + require("os").userInfo().username)')" ||
  fail "$image was built but node does not start in it"
log "built $image: $smoke, $(docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }')"
