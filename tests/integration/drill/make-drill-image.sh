#!/bin/sh
# Builds the drill's worker image inside a lab host's dockerd, from the host's own python3:
# the interpreter, its shared libraries and its standard library, nothing else (about 30 MB).
# No registry is reachable, so the image is `docker import`ed. Usage: make-drill-image.sh TAG
set -eu
tag=${1:-drill-base}
docker image inspect "$tag" >/dev/null 2>&1 && exit 0
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
python=$(readlink -f /usr/bin/python3)
for file in "$python" /bin/sh /bin/sleep $(ldd "$python" /bin/sh /bin/sleep | grep -v ':$' | grep -o '/[^ ]*') \
    /usr/lib/x86_64-linux-gnu/libffi.so.8; do
  cp -L --parents "$file" "$stage/"
done
cp -a --parents /usr/lib/python3.11 "$stage/"
rm -rf "$stage/usr/lib/python3.11/test" "$stage/usr/lib/python3.11/idlelib" "$stage/usr/lib/python3.11/ensurepip"
ln -s "$(basename "$python")" "$stage/usr/bin/python3"
mkdir -p "$stage/tmp" "$stage/data" && chmod 1777 "$stage/tmp"
tar -C "$stage" -c . | docker import -c 'ENV PATH=/usr/bin:/bin' -c 'CMD ["/usr/bin/python3"]' - "$tag" >/dev/null
