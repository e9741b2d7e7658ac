#!/usr/bin/env bash
# The QGIS 3.40 LTR test lane (issue 14): the tests/qgis and tests/cli tiers, run against this
# checkout inside a Debian 13 (trixie) root with QGIS 3.40 from Debian's archive.
#
#   tools/ltr/run_ltr.sh root              build the root, or reuse it when up to date
#   tools/ltr/run_ltr.sh test [ARGS...]    the same, then both tiers (ARGS go to both pytests)
#
# The root (LTR_ROOT, default /var/cache/arctic-assist/ltr-root) is made by mmdebstrap
# (installed with apt-get when missing) from tools/ltr/recipe.sh and tools/ltr/requirements.txt;
# the hash of those two files is its stamp, and a root whose stamp differs is rebuilt. The
# checkout is bound at its own absolute path inside the root, ../shared read-only beside it;
# every mount lives in a private mount namespace (unshare), so none outlives the run, and a
# trap unmounts them on the way out too. As root (mmdebstrap, chroot, mount).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
LTR_ROOT=${LTR_ROOT:-/var/cache/arctic-assist/ltr-root}
STAMP=.arctic-assist-ltr-recipe
# shellcheck source=recipe.sh
. "$HERE/recipe.sh"
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() {
  echo "run_ltr: $*" >&2
  exit 1
}

recipe_hash() { cat "$HERE/recipe.sh" "$HERE/requirements.txt" | sha256sum | cut -d' ' -f1; }

# rm -rf a root, never while anything is mounted below it (it would follow the binds)
remove_root() {
  local dir=$1
  [ -e "$dir" ] || return 0
  if awk -v d="$dir/" 'index($2 "/", d) == 1 { found = 1 } END { exit !found }' /proc/self/mounts; then
    die "something is mounted under $dir; not removing it"
  fi
  rm -rf --one-file-system "$dir"
}

# --- inside a private mount namespace (unshare re-runs this script with __inside) ------------

MOUNTS=()
LTR_ENV=()
unmount_all() {
  local i
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount -l "${MOUNTS[i]}" 2>/dev/null || true
  done
  MOUNTS=()
}

mnt() { # mount ARGS... TARGET
  mount "$@"
  MOUNTS+=("${!#}")
}

mount_system() { # ROOT
  local r=$1
  trap unmount_all EXIT
  trap 'exit 130' INT TERM HUP
  mnt -t proc proc "$r/proc"
  mnt --bind /dev "$r/dev"
  mnt -t tmpfs -o mode=1777 shm "$r/dev/shm"
  mnt -t sysfs sysfs "$r/sys"
}

in_root() { # ROOT DIR CMD... : CMD in DIR inside ROOT, with a clean environment plus LTR_ENV
  local r=$1 dir=$2
  shift 2
  env -i PATH="$CHROOT_PATH" HOME=/tmp/aa-ltr/home LANG=C.UTF-8 TERM="${TERM:-dumb}" \
    "${LTR_ENV[@]}" chroot "$r" /bin/bash -c 'mkdir -p "$HOME" && cd "$0" && exec "$@"' \
    "$dir" "$@"
}

inside_provision() { # ROOT: the venv from PyPI (plain PyPI: none of the host's pip config)
  local r=$1
  mount_system "$r"
  cp -L /etc/resolv.conf "$r/etc/resolv.conf"
  cp "$HERE/requirements.txt" "$r/tmp/aa-requirements.txt"
  # this machine's trust store (it may hold a CA of the network's proxy), for pip only
  cp -L "${LTR_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}" "$r/tmp/aa-host-ca.crt"
  LTR_ENV=(PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/tmp/aa-host-ca.crt)
  in_root "$r" / python3 -m venv --system-site-packages "$LTR_VENV"
  in_root "$r" / "$LTR_VENV/bin/pip" install -q --no-cache-dir -r /tmp/aa-requirements.txt
  rm -f "$r/tmp/aa-requirements.txt" "$r/tmp/aa-host-ca.crt"
  in_root "$r" / "$LTR_VENV/bin/python" -c "import numpy, onnxruntime, onnx, pytest
from osgeo import gdal_array
from qgis.core import Qgis
print('LTR root ok: QGIS', Qgis.QGIS_VERSION, '| Python', __import__('sys').version.split()[0],
      '| numpy', numpy.__version__, '| onnxruntime', onnxruntime.__version__,
      '| GDAL', gdal_array.gdal.__version__)"
}

inside_test() { # ROOT PYTEST_ARGS...
  local r=$1
  shift
  mount_system "$r"
  mkdir -p "$r$REPO"
  mnt --bind "$REPO" "$r$REPO"
  local shared
  shared=$(dirname "$REPO")/shared
  if [ -d "$shared" ]; then
    mkdir -p "$r$shared"
    mnt --bind "$(cd "$shared" && pwd -P)" "$r$shared"
    mount -o remount,bind,ro "$r$shared"
  fi
  rm -rf "$r/tmp/aa-ltr"
  local py="$LTR_VENV/bin/python" site
  site=$(in_root "$r" / "$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  local base=(
    PYTHONDONTWRITEBYTECODE=1 ARCTIC_ASSIST_LTR=1 DATA="$shared/data"
    ARCTIC_ASSIST_ARTIFACTS="$REPO/test-artifacts/ltr" XDG_RUNTIME_DIR=/tmp/aa-ltr/runtime
  )
  mkdir -p -m 700 "$r/tmp/aa-ltr/runtime"
  local rc=0
  echo "== QGIS 3.40 LTR lane: tests/qgis"
  # as `make test-qgis`: the venv's packages on PyQGIS's path, offscreen Qt
  LTR_ENV=("${base[@]}" PYTHONPATH="$site" QT_QPA_PLATFORM=offscreen)
  in_root "$r" "$REPO" "$py" -m pytest tests/qgis -p no:cacheprovider \
    --basetemp=/tmp/aa-ltr/qgis "$@" || rc=1
  echo "== QGIS 3.40 LTR lane: tests/cli"
  # as `make test-cli`: no pytest-qgis; the tests put the venv on qgis_process's PYTHONPATH
  LTR_ENV=("${base[@]}")
  in_root "$r" "$REPO" "$py" -m pytest tests/cli -p no:pytest_qgis -p no:cacheprovider \
    --basetemp=/tmp/aa-ltr/cli "$@" || rc=1
  rm -rf "$r/tmp/aa-ltr"
  return $rc
}

if [ "${1:-}" = __inside ]; then
  shift
  what=$1
  shift
  "inside_$what" "$@"
  exit $?
fi

# --- outside: lock, build or reuse the root, run --------------------------------------------

[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap, chroot and mounts)"
command -v unshare >/dev/null || die "unshare (util-linux) is missing"

build_root() {
  local want new start
  want=$(recipe_hash)
  if [ -f "$LTR_ROOT/$STAMP" ] && [ "$(cat "$LTR_ROOT/$STAMP")" = "$want" ]; then
    echo "LTR root up to date: $LTR_ROOT (recipe $want)"
    return 0
  fi
  start=$SECONDS
  if ! command -v mmdebstrap >/dev/null; then
    echo "apt-get install mmdebstrap"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq mmdebstrap >/dev/null
  fi
  new="$LTR_ROOT.new"
  remove_root "$new"
  echo "Building the LTR root (Debian $LTR_SUITE, QGIS 3.40) in $new"
  mmdebstrap --quiet --variant=apt --include="$(
    IFS=,
    echo "${LTR_PACKAGES[*]}"
  )" "$LTR_SUITE" "$new" "$LTR_MIRROR"
  unshare -m --propagation private "$0" __inside provision "$new"
  echo "$want" >"$new/$STAMP"
  remove_root "$LTR_ROOT"
  mv "$new" "$LTR_ROOT"
  echo "LTR root built in $((SECONDS - start)) s: $LTR_ROOT ($(du -sh "$LTR_ROOT" | cut -f1))"
}

mkdir -p "$(dirname "$LTR_ROOT")"
exec 9>"$(dirname "$LTR_ROOT")/ltr.lock"
flock 9 # one lane at a time on this machine: they share the root

case "${1:-test}" in
  root)
    build_root
    ;;
  test)
    shift || true
    build_root
    unshare -m --propagation private "$0" __inside test "$LTR_ROOT" "$@"
    ;;
  *)
    die "usage: $0 [root|test [PYTEST_ARGS...]]"
    ;;
esac
