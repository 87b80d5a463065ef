#!/usr/bin/env bash
# Vendors the GraphQL playground's third-party files into assets/playground/, where the
# server embeds them: the page then loads nothing from outside the server's origin.
#
# Usage: scripts/vendor-playground.sh
#
# Each package is fetched from the npm registry at the exact version below (`npm pack`
# checks the tarball against the registry's integrity hash), its file is copied under a
# name that carries the version (so that browsers may cache it for good), a gzip copy is
# written beside it, and assets/playground/VERSIONS records every file's SHA-384, which
# the page (assets/playground/index.html) carries as its Subresource Integrity. Run it to
# move to new versions, then update the file names in index.html and
# src/http/playground.rs, run it again, and commit the result.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$ROOT/assets/playground"

# package version file-in-package vendored-name
FILES=(
    "react 18.3.1 umd/react.production.min.js react-18.3.1.min.js"
    "react-dom 18.3.1 umd/react-dom.production.min.js react-dom-18.3.1.min.js"
    "graphiql 4.1.2 graphiql.min.js graphiql-4.1.2.min.js"
    "graphiql 4.1.2 graphiql.min.css graphiql-4.1.2.min.css"
    "graphql-ws 5.16.2 umd/graphql-ws.min.js graphql-ws-5.16.2.min.js"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

sri() { printf 'sha384-%s' "$(openssl dgst -sha384 -binary "$1" | base64 -w0)"; }

mkdir -p "$OUT/licenses"
rm -f "$OUT"/*.min.js "$OUT"/*.min.css "$OUT"/*.gz
{
    echo "# Vendored by scripts/vendor-playground.sh: package@version, file, SHA-384 (SRI form)."
    for entry in "${FILES[@]}"; do
        read -r package version path name <<<"$entry"
        if [[ ! -d "$work/$package-$version" ]]; then
            (cd "$work" && npm pack --silent "$package@$version" >/dev/null)
            mkdir -p "$work/$package-$version"
            tar xzf "$work/$package-$version.tgz" -C "$work/$package-$version"
            cp "$work/$package-$version/package/LICENSE"* "$OUT/licenses/$package-$version.LICENSE"
        fi
        # Without its source map comment: the map is not shipped, and a browser's developer
        # tools would ask the server for it.
        sed '/^\/\/# sourceMappingURL=/d' "$work/$package-$version/package/$path" >"$OUT/$name"
        gzip -9 -n -c "$OUT/$name" >"$OUT/$name.gz"
        printf '%s@%s %s %s\n' "$package" "$version" "$name" "$(sri "$OUT/$name")"
    done
} >"$OUT/VERSIONS"
cat "$OUT/VERSIONS"

# The page names each file with its hash (Subresource Integrity): bring those up to date.
while read -r _ name integrity; do
    NAME="$name" INTEGRITY="$integrity" perl -0pi -e \
        's/((?:src|href)="graphql\/playground\/\Q$ENV{NAME}\E"\s+integrity=")[^"]*/$1$ENV{INTEGRITY}/' \
        "$OUT/index.html"
done < <(grep -v '^#' "$OUT/VERSIONS")
