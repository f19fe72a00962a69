#!/usr/bin/env bash
# Build dogfilter's image where no image registry can be reached (this project's machines): a Debian bookworm base
# made with debootstrap (python3 3.11 + venv; built once and kept in buildah's storage), then deploy/Containerfile
# on it with buildah (--isolation chroot: no daemon, no user namespaces needed). Where a registry is reachable,
# `buildah bud -f deploy/Containerfile .` (or docker/podman build) takes the public python:3.11-slim instead.
#
#   deploy/build-image.sh                  # localhost/dogfilter:cpu
#   deploy/build-image.sh --variant gpu    # localhost/dogfilter:gpu (+ PyTorch with CUDA)
#   deploy/build-image.sh --base-only      # only the base, localhost/dogfilter-base:bookworm-1
#
# Needs root, buildah and debootstrap (apt-get install buildah debootstrap), and Debian's and PyPI's servers.
# Prints the build time and the image's size. DEBIAN_MIRROR overrides the Debian mirror.
set -euo pipefail
cd "$(dirname "$0")/.."

VARIANT=cpu
TAG=
BASE_ONLY=0
BASE_TAG=localhost/dogfilter-base:bookworm-1   # bump the suffix when the recipe below changes
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
while [ $# -gt 0 ]; do
  case "$1" in
    --variant) VARIANT=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --base-only) BASE_ONLY=1; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "build-image: error: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$VARIANT" in cpu|gpu) ;; *) echo "build-image: error: --variant cpu or gpu, not $VARIANT" >&2; exit 2 ;; esac
TAG=${TAG:-localhost/dogfilter:$VARIANT}

[ "$(id -u)" = 0 ] || { echo "build-image: error: needs root (debootstrap, buildah --isolation chroot)" >&2; exit 3; }
for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "build-image: error: $tool is not installed (apt-get install $tool)" >&2; exit 3; }
done

start=$(date +%s)
if buildah inspect --type image "$BASE_TAG" >/dev/null 2>&1; then
  echo "base: $BASE_TAG (kept from an earlier build)"
else
  echo "base: debootstrap bookworm from $MIRROR ..."
  work=$(mktemp -d /var/tmp/dogfilter-base.XXXXXX)
  trap 'rm -rf "$work"' EXIT
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$work/root" "$MIRROR" \
    > "$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
  # slim it: no package lists, caches, documentation or locales in an image
  rm -rf "$work/root"/var/lib/apt/lists/* "$work/root"/var/cache/apt/* "$work/root"/usr/share/doc/* \
         "$work/root"/usr/share/man/* "$work/root"/usr/share/info/* "$work/root"/var/log/*.log
  find "$work/root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
  tar -C "$work/root" -cf "$work/root.tar" .
  ctr=$(buildah from scratch)
  buildah add "$ctr" "$work/root.tar" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
    --cmd python3 --label org.opencontainers.image.description="Debian bookworm (debootstrap minbase) + python3" \
    "$ctr"
  buildah commit --rm -q "$ctr" "$BASE_TAG" >/dev/null
  rm -rf "$work"; trap - EXIT
  echo "base: $BASE_TAG built in $(( $(date +%s) - start )) s"
fi
[ "$BASE_ONLY" = 1 ] && exit 0

# pip inside the build trusts what pip trusts here (a TLS proxy's CA, where PyPI is reached through one): the
# host's bundle goes in as a build secret, mounted for the dependencies' step only, never part of the image
ca=()
bundle=${PIP_CERT:-$(pip config get global.cert 2>/dev/null || true)}
[ -n "$bundle" ] && [ -f "$bundle" ] || bundle=/etc/ssl/certs/ca-certificates.crt
[ -f "$bundle" ] && ca=(--secret "id=ca_bundle,src=$bundle")
t0=$(date +%s)
buildah bud --isolation chroot --layers --force-rm -q -f deploy/Containerfile --build-arg BASE="$BASE_TAG" \
  --build-arg VARIANT="$VARIANT" "${ca[@]}" -t "$TAG" . >/dev/null
size=$(buildah inspect --type image --format '{{.Size}}' "$TAG" 2>/dev/null || echo 0)
[ "$size" -gt 0 ] 2>/dev/null || size=$(buildah images --noheading --format '{{.Size}}' "$TAG")
echo "image: $TAG built in $(( $(date +%s) - t0 )) s (base included: $(( $(date +%s) - start )) s), size $(buildah images --noheading --format '{{.Size}}' "$TAG")"
