#!/bin/sh
# Build the example image on this host from Debian's busybox-static: no registry needed.
# Usage: examples/containers/build-image.sh [TAG]   (default driftless-example/busybox:1)
set -eu
tag=${1:-driftless-example/busybox:1}
busybox=$(command -v busybox || echo /bin/busybox)
[ -x "$busybox" ] || { echo "build-image.sh: busybox not found: apt-get install busybox-static" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/etc"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/:/bin/sh' > "$root/etc/passwd"
tar -C "$root" -c . | docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' - "$tag" >/dev/null
echo "built $tag"
