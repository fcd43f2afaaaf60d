#!/usr/bin/env bash
# Packs the build dependencies of ringlm (jansson, pcre2, ICU, libmicrohttpd:
# headers, pkg-config files and shared libraries from this Debian machine)
# into .devcarry/sysroot.tar.xz, with .devcarry/setup.sh to unpack it, for a
# GPU machine whose image has the CUDA toolkit but not these -dev packages
# and no network. There: `source .devcarry/setup.sh && make test-gpu`.
# .devcarry/ is git-ignored (the packages are Debian's, not ours).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
apt-get download libjansson-dev libjansson4 libpcre2-dev libpcre2-8-0 libicu-dev libicu72 \
    libmicrohttpd-dev libmicrohttpd12 >/dev/null
mkdir sys
for d in *.deb; do dpkg -x "$d" sys; done
cd sys
rm -rf usr/share usr/bin usr/lib/x86_64-linux-gnu/icu
find . -name '*.a' -delete
lib=usr/lib/x86_64-linux-gnu
rm -f $lib/libicui18n* $lib/libicuio* $lib/libicutest* $lib/libicutu* $lib/libpcre2-16* \
      $lib/libpcre2-32* $lib/libpcre2-posix* $lib/pkgconfig/icu-i18n.pc $lib/pkgconfig/icu-io.pc \
      $lib/pkgconfig/libpcre2-16.pc $lib/pkgconfig/libpcre2-32.pc $lib/pkgconfig/libpcre2-posix.pc
# the GPU machine's own gnutls serves libmicrohttpd at run time; its .pc is not needed
sed -i '/^Requires/d' $lib/pkgconfig/libmicrohttpd.pc
mkdir -p "$root/.devcarry"
tar -cJf "$root/.devcarry/sysroot.tar.xz" .
cat > "$root/.devcarry/setup.sh" <<'EOS'
# Source on the GPU machine: unpacks the sysroot into /opt/rlsys (fresh each
# time: a warm machine may hold an older copy) and points pkg-config at it.
# Only ICU 72 goes on LD_LIBRARY_PATH (libicuuc finds libicudata through it);
# the rest resolves through the build's RPATH or the system.
rm -rf /opt/rlsys && mkdir -p /opt/rlsys/rt
tar -C /opt/rlsys -xJf "$(dirname "${BASH_SOURCE[0]}")/sysroot.tar.xz"
cp -a /opt/rlsys/usr/lib/x86_64-linux-gnu/libicu*.so.72* /opt/rlsys/rt/
export PKG_CONFIG_PATH=/opt/rlsys/usr/lib/x86_64-linux-gnu/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=/opt/rlsys
export LD_LIBRARY_PATH=/opt/rlsys/rt${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
EOS
echo "wrote $root/.devcarry/sysroot.tar.xz ($(du -h "$root/.devcarry/sysroot.tar.xz" | cut -f1)) and setup.sh"
