#!/bin/sh
# Assembles the root filesystem of the Volley image under DEST from Debian
# packages, without installing them: `apt-get download` fetches the .deb files
# and `dpkg-deb -x` unpacks them. No maintainer script runs, so nothing needs a
# shell or a package database inside the image.
#
#   image/rootfs.sh DEST
#
# Used by the Dockerfile's `rootfs` stage (in debian:bookworm-slim) and by the
# image test on a Debian host (charts/tests/test_image.py), so both build the
# same files. Needs apt-get and dpkg-deb; runs `apt-get update` when the
# package lists are missing.
#
# What the binaries need (see `ldd`): libc6 (libc, libm, the loader) and
# libgcc-s1 (unwinding). ca-certificates: workers trust the system's roots
# for https:// and TLS targets (rustls-native-certs reads the bundle).
set -eu

dest=${1:?usage: image/rootfs.sh DEST}
packages="libc6 libgcc-s1 ca-certificates"
uid=65532

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# As root, apt drops privileges to _apt to download into $work; the
# directory is ours, so download as root.
download() { (cd "$work" && apt-get download -qq -o APT::Sandbox::User=root $packages); }
if ! download 2>/dev/null; then
  apt-get update -qq
  download
fi

mkdir -p "$dest"
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$dest"
done

# Not needed to run two Rust programs: iconv modules, docs (the
# copyright files stay), lintian data, and the CA tool (a shell script).
rm -rf "$dest/usr/lib/x86_64-linux-gnu/gconv" "$dest/usr/share/lintian" \
       "$dest/usr/share/locale" "$dest/usr/share/man" \
       "$dest/usr/sbin/update-ca-certificates"
find "$dest/usr/share/doc" -type f ! -name copyright -delete
find "$dest/usr/share/doc" -type l -delete
find "$dest/usr/share/doc" -depth -type d -empty -delete

# What update-ca-certificates would write (the package's postinst runs it):
# the bundle of every Mozilla root, at the path rustls-native-certs (through
# openssl-probe) and OpenSSL look at.
mkdir -p "$dest/etc/ssl/certs"
cat "$dest"/usr/share/ca-certificates/mozilla/*.crt > "$dest/etc/ssl/certs/ca-certificates.crt"

# The user the image runs as: a fixed number, so that Kubernetes'
# runAsNonRoot can check it (the chart's securityContext uses it too).
cat > "$dest/etc/passwd" <<PASSWD
root:x:0:0:root:/root:/sbin/nologin
volley:x:$uid:$uid:volley:/report:/sbin/nologin
PASSWD
cat > "$dest/etc/group" <<GROUP
root:x:0:
volley:x:$uid:
GROUP
printf 'hosts: files dns\n' > "$dest/etc/nsswitch.conf"

mkdir -p "$dest/tmp" "$dest/report" "$dest/usr/local/bin"
chmod 1777 "$dest/tmp"
chown "$uid:$uid" "$dest/report"
