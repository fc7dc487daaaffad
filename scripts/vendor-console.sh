#!/usr/bin/env bash
# Re-fetch the web console's vendored libraries from their npm packages (no build
# step: each file is the package's own browser build, copied as it is).
# Usage: scripts/vendor-console.sh   (needs npm; edit the versions below on purpose)
set -euo pipefail
cd "$(dirname "$0")/.."
static=src/pluggably/console/static/vendor
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fetch() {  # fetch <package@version> -> unpacked in $work/<name>/package
  local spec=$1 dir
  dir="$work/$(echo "$spec" | tr '/@' '__')"
  mkdir -p "$dir"
  (cd "$dir" && npm pack -q "$spec" >/dev/null && tar xzf ./*.tgz)
  echo "$dir/package"
}
p=$(fetch marked@18.2.1)
cp "$p/lib/marked.esm.js" "$static/"; cp "$p/LICENSE" "$static/licenses/marked.LICENSE"
p=$(fetch dompurify@3.4.18)
cp "$p/dist/purify.es.mjs" "$static/"; cp "$p/LICENSE" "$static/licenses/dompurify.LICENSE"
p=$(fetch @highlightjs/cdn-assets@11.12.0)
cp "$p/es/highlight.min.js" "$static/highlight.min.js"
cp "$p/styles/github.min.css" "$static/highlight-github.min.css"
cp "$p/LICENSE" "$static/licenses/highlight.js.LICENSE"
p=$(fetch @google/model-viewer@4.4.0)
cp "$p/dist/model-viewer.min.js" "$static/"; cp "$p/LICENSE" "$static/licenses/model-viewer.LICENSE"
# Test-only: the accessibility engine the browser tests inject.
p=$(fetch axe-core@4.14.1)
cp "$p/axe.min.js" tests/console/vendor/; cp "$p/LICENSE" tests/console/vendor/axe-core.LICENSE
echo "vendored into $static and tests/console/vendor"
