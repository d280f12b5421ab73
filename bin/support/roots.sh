# Debian roots for bin/matrix and bin/package, sourced by both: built once
# under tmp/ with debootstrap from Debian's mirror, entered with chroot.
# The caller sets `project` (the checkout) and runs as root.

# The mounts made here, undone on exit whatever happens.
root_mounts=()
root_unmount_all() {
  local i
  for ((i = ${#root_mounts[@]} - 1; i >= 0; i--)); do
    umount -l "${root_mounts[i]}" 2>/dev/null || true
  done
  root_mounts=()
}
trap root_unmount_all EXIT

root_bind() { # root_bind SRC DEST
  mkdir -p "$2"
  mountpoint -q "$2" || { mount --bind "$1" "$2"; root_mounts+=("$2"); }
}

# root_ensure SUITE DIR [ARCH]: debootstrap SUITE into DIR once (with the
# host's CA bundle, as this network re-signs TLS), then copy the host's
# resolver. A foreign ARCH (arm64) runs under qemu-user-static: see
# bin/support/aarch64.sh.
root_ensure() {
  local suite=$1 dir=$2 arch=${3:-}
  if [ ! -f "$dir/.killer-base" ]; then
    command -v debootstrap >/dev/null ||
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    echo "bin/${0##*/}: building a Debian $suite root in $dir (debootstrap, about a minute)" >&2
    rm -rf "$dir"
    mkdir -p "$dir"
    debootstrap ${arch:+--arch="$arch"} --variant=minbase --include=ca-certificates "$suite" "$dir" http://deb.debian.org/debian \
      >"$dir.debootstrap.log" 2>&1 || { tail -20 "$dir.debootstrap.log" >&2; exit 1; }
    touch "$dir/.killer-base"
  fi
  cp /etc/resolv.conf "$dir/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/host-ca-bundle.crt"
}

# root_mount DIR [rust]: /proc, /sys, /dev; with `rust`, this machine's
# Rust toolchain too (a root without it has no cargo at all).
root_mount() {
  local dir=$1
  root_bind /proc "$dir/proc"
  root_bind /sys "$dir/sys"
  root_bind /dev "$dir/dev"
  root_bind /dev/pts "$dir/dev/pts"
  mkdir -p "$dir/dev/shm"
  if [ "${2:-}" = rust ]; then
    root_bind "$HOME/.cargo" "$dir/root/.cargo"
    root_bind "$HOME/.rustup" "$dir/root/.rustup"
  fi
}

# root_run DIR COMMAND: COMMAND in bash inside DIR, with a clean
# environment plus the `root_env` array (NAME=value words).
root_env=()
root_run() {
  chroot "$1" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/root/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    SSL_CERT_FILE=/etc/ssl/certs/host-ca-bundle.crt NODE_EXTRA_CA_CERTS=/etc/ssl/certs/host-ca-bundle.crt \
    CARGO_HTTP_CAINFO=/etc/ssl/certs/host-ca-bundle.crt \
    ${root_env[@]+"${root_env[@]}"} /bin/bash -c "$2"
}

# root_copy_tree DEST: the working tree as git sees it (tracked and
# untracked, not ignored); the browser test's node_modules is kept.
root_copy_tree() {
  local dest=$1 fresh="$1.new"
  rm -rf "$fresh"
  mkdir -p "$fresh"
  (cd "$project" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -xf - -C "$fresh"
  if [ -d "$dest/spec/browser/node_modules" ]; then
    mv "$dest/spec/browser/node_modules" "$fresh/spec/browser/node_modules"
  fi
  rm -rf "$dest"
  mv "$fresh" "$dest"
}
