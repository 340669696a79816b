#!/usr/bin/env bash
# The suite on a CPython that pyenv does not have here, Debian's own build of it,
# in a Debian sid chroot (debootstrap) beside the checkout:
#   bash ci/chroot-python-tests.sh            # CPython 3.14
#   RIO_CHROOT_PYTHON=3.15 bash ci/chroot-python-tests.sh
# Needs root (chroot, mounts) and Debian's package mirror. When the chroot cannot
# be made (not root, no debootstrap, no mirror, no such python in sid) it prints
# "skipped" and exits 0; once it is made, a failing build or test fails the run.
# The chroot is kept in RIO_CHROOT_DIR (default /var/tmp/rio-sid-<version>) and
# reused; the checkout is copied into it afresh each run.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${RIO_CHROOT_PYTHON:-3.14}
root=${RIO_CHROOT_DIR:-/var/tmp/rio-sid-$version}
mirror=${RIO_CHROOT_MIRROR:-http://deb.debian.org/debian}
py=python$version

skip() {
  echo "skipped: $*"
  exit 0
}

[ "$(id -u)" = 0 ] || skip "not root (chroot and mount need it)"

if [ ! -x "$root/usr/bin/$py" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    { apt-get update -qq && apt-get install -y -qq debootstrap; } >/dev/null 2>&1 \
      || skip "debootstrap cannot be installed"
  fi
  rm -rf "$root.partial"
  echo "making a Debian sid chroot with $py in $root (debootstrap)"
  if ! debootstrap --variant=minbase \
      --include="$py,$py-dev,$py-venv,lib$py-testsuite,gcc,libc6-dev,ca-certificates" \
      sid "$root.partial" "$mirror" >"/tmp/rio-debootstrap-$version.log" 2>&1; then
    tail -5 "/tmp/rio-debootstrap-$version.log"
    rm -rf "$root.partial"
    skip "debootstrap of sid with $py failed (log: /tmp/rio-debootstrap-$version.log)"
  fi
  mv "$root.partial" "$root"
fi

# PyPI through this machine's proxy: its certificates, and DNS
cp /etc/resolv.conf "$root/etc/resolv.conf"
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
  cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
chroot "$root" update-ca-certificates >/dev/null 2>&1

mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount -l "${mounted[$i]}" 2>/dev/null || true
  done
}
trap cleanup EXIT
mount_in() {
  local target=$root$1
  shift
  mkdir -p "$target"
  mountpoint -q "$target" || mount "$@" "$target"
  mounted+=("$target")
}
mount_in /proc -t proc proc
mount_in /dev --bind /dev
mount_in /dev/pts --bind /dev/pts

# the checkout as it is, without build products or virtual environments
rm -rf "$root/src"
mkdir -p "$root/src"
tar --exclude=./.git --exclude='./.venv*' --exclude=./build --exclude='*.so' \
  --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -xf - -C "$root/src"

echo "Debian sid's $(chroot "$root" "$py" -V)"
chroot "$root" env -u PIP_FIND_LINKS HOME=/root PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
  bash -euo pipefail -c "
    cd /src
    rm -rf /venv-test
    $py -m venv /venv-test
    /venv-test/bin/pip install -q --disable-pip-version-check '.[test]'
    /venv-test/bin/python -P -c 'import rio_core._reactor as r, rio_core, sys; print(\"built:\", r.BACKEND, \"debug\" if rio_core.debug_build() else \"release\", sys.version.split()[0])'
    /venv-test/bin/pytest -q -p no:cacheprovider
  "
