#!/bin/sh
# Build a PostgreSQL image on this host from Debian's own packages (postgresql-15 and
# busybox-static): no registry needed. What the data e2e test and the snapshot bench run.
# Usage: examples/data/build-postgres-image.sh [TAG]   (default driftless-test/postgres:15)
# The image runs as uid 999 (postgres) and initialises /var/lib/postgresql/data on first
# start (trust authentication: for tests only), listening on 5432.
set -eu
tag=${1:-driftless-test/postgres:15}
pg=/usr/lib/postgresql/15
busybox=$(command -v busybox || echo /bin/busybox)
[ -x "$pg/bin/postgres" ] || { echo "build-postgres-image.sh: $pg/bin/postgres not found: apt-get install postgresql-15" >&2; exit 1; }
[ -x "$busybox" ] || { echo "build-postgres-image.sh: busybox not found: apt-get install busybox-static" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/usr/share" "$root/usr/lib/postgresql" "$root/var/lib/postgresql/data"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$root/bin/$applet"
done
cp -a "$pg" "$root/usr/lib/postgresql/"
cp -a /usr/share/postgresql "$root/usr/share/"
cp -a /usr/share/zoneinfo "$root/usr/share/"
# The shared libraries the binaries and modules load, at their own paths.
rm -rf "$root$pg"/lib/llvmjit* "$root$pg"/lib/bitcode  # JIT: not needed, and libLLVM is large
for f in "$pg"/bin/* $(ls "$pg"/lib/*.so | grep -v llvmjit); do
  ldd "$f" 2>/dev/null | awk '/=> \// { print $3 } /^\t\/lib/ { print $1 }'
done | sort -u | while read -r lib; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
cat > "$root/etc/passwd" <<'P'
root:x:0:0:root:/:/bin/sh
postgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh
P
echo 'root:x:0:' > "$root/etc/group"
echo 'postgres:x:999:' >> "$root/etc/group"
cat > "$root/bin/pg-start" <<'S'
#!/bin/sh
# Initialise the cluster on first start, then run postgres in the foreground.
set -e
export PGDATA=/var/lib/postgresql/data
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  echo "unix_socket_directories = '/tmp'" >> "$PGDATA/postgresql.conf"
  echo "host all all 0.0.0.0/0 trust" >> "$PGDATA/pg_hba.conf"
fi
exec postgres -D "$PGDATA"
S
chmod 755 "$root/bin/pg-start"
chown -R 999:999 "$root/var/lib/postgresql"
chmod 700 "$root/var/lib/postgresql/data"
tar -C "$root" --numeric-owner -c . | docker import \
  --change 'CMD ["/bin/pg-start"]' \
  --change "ENV PATH=$pg/bin:/bin" \
  --change 'ENV PGHOST=/tmp' \
  --change 'ENV TZ=UTC' \
  --change 'USER 999' \
  - "$tag" >/dev/null
echo "built $tag"
