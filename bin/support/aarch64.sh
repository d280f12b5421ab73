# The aarch64-linux gem's two needs on this x86_64 machine, sourced by
# bin/package after roots.sh (which sets `project`, `root_*`):
#
# - a library per Ruby, cross-compiled in a Debian root of the Ruby's suite
#   (amd64): rustup's aarch64-unknown-linux-gnu std, gcc-aarch64-linux-gnu
#   to link (and for ring's and rb-sys's C), bindgen reading the arm64
#   Ruby's headers with --target, and rb-sys reading the arm64 Ruby's
#   rbconfig.rb through this root's own Ruby. The arm64 libruby and
#   ruby-dev packages are unpacked under /opt/arm64, not installed: apt
#   cannot co-install them (libruby3.3:arm64 depends on arch-all packages
#   that do not satisfy a foreign architecture).
# - arm64 Debian roots to try the gem in, run through qemu-user-static and
#   the kernel's binfmt_misc.

# aarch64_emulation: arm64 programs run here (qemu-user-static, registered
# with binfmt_misc's F flag so that it works inside chroots).
aarch64_emulation() {
  [ -x /usr/bin/qemu-aarch64-static ] ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-user-static >/dev/null
  mountpoint -q /proc/sys/fs/binfmt_misc ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
    cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
}

# aarch64_library SUITE RUBY_MAJOR_MINOR OUT: the extension for that
# suite's arm64 Ruby, stripped, written to OUT.
aarch64_library() {
  local suite=$1 ruby=$2 out=$3
  local dir="$project/tmp/package/cross/$suite"
  root_ensure "$suite" "$dir"
  root_mount "$dir" rust
  if [ ! -f "$dir/.killer-cross" ]; then
    say "$suite: installing the aarch64 cross toolchain and unpacking the arm64 Ruby $ruby"
    root_run "$dir" "dpkg --add-architecture arm64 && apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\
        ruby$ruby gcc libc6-dev gcc-aarch64-linux-gnu libc6-dev-arm64-cross libclang-dev >/dev/null &&
      rm -rf /opt/arm64 && mkdir -p /opt/arm64/debs && cd /opt/arm64/debs &&
      apt-get download -qq libruby$ruby:arm64 ruby$ruby-dev:arm64 2>/dev/null &&
      for deb in *.deb; do dpkg-deb -x \"\$deb\" /opt/arm64; done"
    touch "$dir/.killer-cross"
  fi
  rustup target add aarch64-unknown-linux-gnu >/dev/null 2>&1
  root_copy_tree "$dir/build/src"
  # rbconfig.rb finds its prefix from where it lies: /opt/arm64/usr.
  printf '#!/bin/sh\nexec ruby%s -I/opt/arm64/usr/lib/aarch64-linux-gnu/ruby/%s.0 "$@"\n' "$ruby" "$ruby" \
    >"$dir/build/ruby-arm64"
  chmod +x "$dir/build/ruby-arm64"
  root_env=(CARGO_TARGET_DIR=/build/target RUBY=/build/ruby-arm64
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu=--target=aarch64-linux-gnu)
  root_run "$dir" "cd /build/src && cargo build --release --locked --quiet --target aarch64-unknown-linux-gnu \\
      --manifest-path ext/killer/Cargo.toml &&
    aarch64-linux-gnu-strip --strip-unneeded -o /build/killer.so /build/target/aarch64-unknown-linux-gnu/release/libkiller.so"
  root_env=()
  mkdir -p "$(dirname "$out")"
  cp "$dir/build/killer.so" "$out"
}
