#!/bin/sh
# tests/contract/run.sh — proto/openapi.yaml as tools see it: @redocly/cli
# lint (recommended rules: no error, no warning), @apidevtools/swagger-cli
# validate, and the TypeScript that openapi-typescript generates from it
# compiled by tsc --strict against a small typed client (client.ts). The
# tools come from the committed package-lock.json (npm ci into
# tests/contract/node_modules when it is missing). Last line:
# "N passed, N failed".
set -u
here=$(cd "$(dirname "$0")" && pwd)
spec="$here/../../proto/openapi.yaml"
. "$here/../tally.sh"
cd "$here" || exit 1
if ! command -v npm >/dev/null 2>&1; then
  bad "npm is not installed (deploy/install-deps.sh --test)"
  tally
  exit 1
fi
if [ ! -x node_modules/.bin/redocly ]; then
  npm ci --no-audit --no-fund --ignore-scripts >npm.log 2>&1 || {
    cat npm.log
    bad "npm ci in tests/contract"
    tally
    exit 1
  }
fi
bin=node_modules/.bin
# Redocly nags about telemetry and updates: neither may reach the network.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
out=$(timeout 300 "$bin/redocly" lint "$spec" --format=summary 2>&1)
if echo "$out" | grep -q "Your API description is valid"; then
  ok "redocly lint: no error, no warning"
else
  echo "$out" | grep -v '[║╔╚]'
  bad "redocly lint"
fi
out=$(timeout 300 "$bin/swagger-cli" validate "$spec" 2>&1)
if [ $? -eq 0 ]; then
  ok "swagger-cli validate: $out"
else
  echo "$out"
  bad "swagger-cli validate"
fi
mkdir -p gen
if timeout 300 "$bin/openapi-typescript" "$spec" -o gen/api.d.ts >gen.log 2>&1; then
  ok "openapi-typescript generates gen/api.d.ts"
  if timeout 300 "$bin/tsc" -p . >tsc.log 2>&1; then
    ok "tsc --strict compiles the typed client on the generated types"
  else
    cat tsc.log
    bad "tsc --strict on client.ts"
  fi
else
  cat gen.log
  bad "openapi-typescript"
fi
tally
