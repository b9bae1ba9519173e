#!/bin/sh
# Fetches the vendored RapiDoc bundle served at /docs (no CDN: /docs works air-gapped).
# Usage: sh crates/api/assets/fetch.sh [version]; then update the version and checksum in README.md.
set -eu
version=${1:-9.3.8}
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "rapidoc@$version" >/dev/null && tar xzf "rapidoc-$version.tgz" package/dist/rapidoc-min.js)
cp "$tmp/package/dist/rapidoc-min.js" "$here/rapidoc-min.js"
sha256sum "$here/rapidoc-min.js"
