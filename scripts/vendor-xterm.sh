#!/usr/bin/env bash
# Refreshes the browser pages' terminal emulator from the npm registry:
# xterm.js (@xterm/xterm) and its fit addon (@xterm/addon-fit), the built
# files and their licences, into dgate-server/web/vendor/. The server
# compiles them in (web/mod.rs), so the pages work offline.
#
#   scripts/vendor-xterm.sh                 # the versions pinned below
#   scripts/vendor-xterm.sh 6.0.0 0.11.0    # other versions
#
# Needs npm. Review the diff (and run the web tests) before committing.
set -euo pipefail
cd "$(dirname "$0")/.."

XTERM_VERSION="${1:-6.0.0}"
FIT_VERSION="${2:-0.11.0}"
VENDOR=dgate-server/web/vendor

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@xterm/xterm@$XTERM_VERSION" "@xterm/addon-fit@$FIT_VERSION" >/dev/null)
for tarball in "$work"/*.tgz; do
    mkdir -p "${tarball%.tgz}"
    tar -xzf "$tarball" -C "${tarball%.tgz}"
done
xterm="$work/xterm-xterm-$XTERM_VERSION/package"
fit="$work/xterm-addon-fit-$FIT_VERSION/package"

rm -rf "$VENDOR/xterm" "$VENDOR/addon-fit"
mkdir -p "$VENDOR/xterm" "$VENDOR/addon-fit"
# The UMD builds (plain scripts: window.Terminal, window.FitAddon), without
# their source maps' comment (the maps are not served).
sed '/^\/\/# sourceMappingURL=/d' "$xterm/lib/xterm.js" > "$VENDOR/xterm/xterm.js"
cp "$xterm/css/xterm.css" "$xterm/LICENSE" "$VENDOR/xterm/"
sed '/^\/\/# sourceMappingURL=/d' "$fit/lib/addon-fit.js" > "$VENDOR/addon-fit/addon-fit.js"
cp "$fit/LICENSE" "$VENDOR/addon-fit/"
{
    echo "Vendored by scripts/vendor-xterm.sh from the npm registry; do not edit."
    echo "@xterm/xterm $XTERM_VERSION (MIT, xterm/LICENSE)"
    echo "@xterm/addon-fit $FIT_VERSION (MIT, addon-fit/LICENSE)"
} > "$VENDOR/VERSIONS"
echo "vendored @xterm/xterm $XTERM_VERSION and @xterm/addon-fit $FIT_VERSION into $VENDOR"
