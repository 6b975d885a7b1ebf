#!/usr/bin/env bash
# Builds the project image (default `impulse:local`) from the repository root:
#   1. compiles common, shard-node and gateway (`tsc -b`, incremental);
#   2. stages the production node_modules in deploy/docker/.build/ (the host's packages minus the
#      dev dependencies, workspace links kept), so the Docker build needs no registry;
#   3. picks the base image: $BASE_IMAGE if set, else node:20-slim if it is present locally, else
#      impulse-base:local (built by build-base-image.sh when missing);
#   4. runs `docker build -f deploy/Dockerfile` and checks that both processes start in the image.
#
# Idempotent: the compiler and Docker's layer cache make a second run fast and change nothing.
#
# Usage: deploy/docker/build-image.sh [image-name]   (default impulse:local)
# Environment: BASE_IMAGE (force a base), IMPULSE_SKIP_COMPILE=1 (use the dist/ folders as they are).
set -euo pipefail

image="${1:-impulse:local}"
repository_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
staging="$repository_root/deploy/docker/.build"
packages=(common shard-node gateway)

log() { echo "build-image: $*" >&2; }
fail() {
  log "FAILED: $*"
  exit 1
}
step() {
  step_started=$SECONDS
  log "$*"
}
done_step() { log "  done in $((SECONDS - step_started)) s"; }

command -v docker >/dev/null || fail "the docker CLI is not installed"
docker info >/dev/null 2>&1 || fail "cannot reach the Docker engine (is dockerd running? DOCKER_HOST=${DOCKER_HOST:-unset})"
cd "$repository_root"
[ -d node_modules ] || fail "node_modules is missing: run 'npm ci' first"

if [ "${IMPULSE_SKIP_COMPILE:-0}" != "1" ]; then
  step "compiling ${packages[*]} (tsc -b)"
  npx tsc -b "${packages[@]}" || fail "the TypeScript build failed"
  done_step
fi
for package in "${packages[@]}"; do
  [ -f "$package/dist/index.js" ] || fail "$package/dist is missing: the build did not produce it"
done

step "staging the production node_modules in ${staging#"$repository_root"/}"
# `npm ls --omit=dev` walks the lockfile's tree from the three workspaces the image runs, so the
# list is exactly their production dependencies, transitive ones included. It fails when the
# installed tree does not match package.json, which is a reason to stop, not to guess.
listing="$(npm ls --omit=dev --all --parseable "${packages[@]/#/--workspace=}")" ||
  fail "npm ls found a broken dependency tree; run 'npm ci' and try again"
rm -rf "$staging"
mkdir -p "$staging/node_modules" "$staging/data"
count=0
while IFS= read -r path; do
  relative="${path#"$repository_root"/}"
  # Only top-level packages: a nested node_modules is copied with the package that owns it.
  case "$relative" in
    node_modules/@*/*/node_modules/* | node_modules/*/node_modules/*) continue ;;
    node_modules/@*/* | node_modules/*) ;;
    *) continue ;; # the repository root and the workspace folders themselves
  esac
  mkdir -p "$staging/$(dirname "$relative")"
  # -P keeps the workspace links (node_modules/@impulse/common -> ../../common) as links.
  cp -RP "$relative" "$staging/$relative"
  count=$((count + 1))
done <<<"$listing"
[ -L "$staging/node_modules/@impulse/common" ] || fail "the workspace link @impulse/common was not staged"
log "  $count packages, $(du -sh "$staging/node_modules" | cut -f1)"
done_step

if [ -n "${BASE_IMAGE:-}" ]; then
  base="$BASE_IMAGE"
  log "base image: $base (from BASE_IMAGE)"
elif docker image inspect node:20-slim >/dev/null 2>&1; then
  base=node:20-slim
  log "base image: node:20-slim (present locally)"
else
  base=impulse-base:local
  log "base image: node:20-slim is not present locally (no registry is assumed); using $base"
  step "building $base"
  "$repository_root/deploy/docker/build-base-image.sh" "$base" || fail "could not build $base"
  done_step
fi

step "building $image on $base"
# The classic builder is used when BuildKit (buildx) is not installed; both read the same
# Dockerfile. Output is kept so a failure shows the step that broke.
docker build --file deploy/Dockerfile --build-arg "BASE_IMAGE=$base" --tag "$image" \
  --label "org.impulse.base-image=$base" . || fail "docker build failed"
done_step

step "checking that both processes start in $image"
docker run --rm "$image" shard-node/dist/main.js --help >/dev/null || fail "shard-node does not start in $image"
docker run --rm "$image" gateway/dist/main.js --help >/dev/null || fail "gateway does not start in $image"
owner="$(docker run --rm --entrypoint node "$image" -e 'const s = require("fs").statSync("/data"); console.log(`${process.getuid()} ${s.uid}`)')" ||
  fail "cannot inspect /data in $image"
[ "$owner" = "1000 1000" ] || fail "expected to run as uid 1000 owning /data, got '$owner' (uid, owner of /data)"
done_step
log "built $image ($(docker image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.0f MB", $1 / 1e6 }'))"
