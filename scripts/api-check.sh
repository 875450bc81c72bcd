#!/usr/bin/env bash
# Proves the OpenAPI description can be trusted, against the live server:
#   1. the spec validates (openapi-spec-validator);
#   2. a Python client generated from it (openapi-python-client) imports and makes a real call;
#   3. a TypeScript client generated from it (openapi-typescript) type-checks with tsc;
#   4. Schemathesis sends generated requests to every operation with a real bearer token and
#      finds no server error and no response that contradicts the spec.
# Steps 1-3 run once (the spec does not depend on the backend); step 4 runs on SQLite and on
# PostgreSQL. Tools are installed outside the clone, in $JUHE_TOOLS_DIR (default
# /work/.cache): a Python venv and an npm prefix, reused between runs.
#
# Usage: scripts/api-check.sh [sqlite] [postgres]     (default: both)
# Env:   JUHE_BIN (default: build the debug binary), JUHE_TEST_POSTGRES_URL (the server
#        to create a scratch database on), JUHE_API_CHECK_EXAMPLES (examples per operation).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$(pwd)

backends=("$@")
[ ${#backends[@]} -eq 0 ] && backends=(sqlite postgres)

tools=${JUHE_TOOLS_DIR:-/work/.cache}
venv=$tools/juhe-venv
npm_prefix=$tools/juhe-npm
examples=${JUHE_API_CHECK_EXAMPLES:-50}
pg_admin_url=${JUHE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}

work=$(mktemp -d /tmp/juhe-api-check.XXXXXX)
server_pid=""
pg_db=""
cleanup() {
    if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
    if [ -n "$pg_db" ]; then
        psql "${pg_admin_url%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

step() { echo "== api-check: $*"; }

# --- tools -------------------------------------------------------------------------------
step "tools in $tools"
mkdir -p "$tools"
# Pinned so a new release cannot change what CI accepts overnight.
py_pkgs=(schemathesis==4.32.5 openapi-spec-validator==0.9.0 openapi-python-client==0.29.1)
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/pip" freeze --disable-pip-version-check >"$work/freeze.txt" 2>/dev/null || true
if ! grep -qix 'schemathesis==4.32.5' "$work/freeze.txt" \
    || ! grep -qix 'openapi-python-client==0.29.1' "$work/freeze.txt" \
    || ! grep -qix 'openapi-spec-validator==0.9.0' "$work/freeze.txt"; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check "${py_pkgs[@]}" </dev/null
fi
if [ ! -x "$npm_prefix/node_modules/.bin/openapi-typescript" ] || [ ! -x "$npm_prefix/node_modules/.bin/tsc" ]; then
    mkdir -p "$npm_prefix"
    npm install --silent --no-audit --no-fund --prefix "$npm_prefix" openapi-typescript@7.13.0 typescript@5.9.3 </dev/null
fi

# --- server ------------------------------------------------------------------------------
if [ -z "${JUHE_BIN:-}" ]; then
    step "building the juhe binary"
    cargo build --quiet -p juhe-cli
    JUHE_BIN=${CARGO_TARGET_DIR:-$repo/target}/debug/juhe
fi

free_port() { "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Starts a server on a scratch database of the given backend; sets $base, $token, $merchant.
start_server() {
    local backend=$1 db
    case $backend in
        sqlite) db="sqlite://$work/$backend/juhe.db" ;;
        postgres)
            pg_db="juhe_t_apicheck_$$"
            psql "${pg_admin_url%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null
            psql "${pg_admin_url%/*}/postgres" -qc "CREATE DATABASE \"$pg_db\"" >/dev/null
            db="${pg_admin_url%/*}/$pg_db" ;;
        *) echo "unknown backend $backend"; exit 2 ;;
    esac
    mkdir -p "$work/$backend"
    export JUHE_DATABASE_URL=$db
    # Generated traffic is much faster than any one merchant's real traffic: the rate limit
    # would turn most of it into 429s and test nothing else.
    export JUHE_RATE_LIMIT__PER_SECOND=0
    "$JUHE_BIN" migrate >/dev/null 2>&1
    local creds client_id client_secret port
    creds=$("$JUHE_BIN" merchant create --name "API check 商户" 2>/dev/null)
    merchant=$(echo "$creds" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["merchantId"])')
    client_id=$(echo "$creds" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["clientId"])')
    client_secret=$(echo "$creds" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["clientSecret"])')
    "$JUHE_BIN" import --merchant "$merchant" crates/juhe/tests/fixtures/org-example.json >/dev/null 2>&1
    port=$(free_port)
    base="http://127.0.0.1:$port"
    "$JUHE_BIN" serve --listen "127.0.0.1:$port" >"$work/$backend/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        curl -fsS "$base/healthz" >/dev/null 2>&1 && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/$backend/server.log"; exit 1; }
        sleep 0.1
    done
    token=$(curl -fsS "$base/connect/token" -d grant_type=client_credentials -d scope=Ls.Qkl.PublicApi \
        --data-urlencode "client_id=$client_id" --data-urlencode "client_secret=$client_secret" \
        | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
}

stop_server() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    if [ -n "$pg_db" ]; then
        psql "${pg_admin_url%/*}/postgres" -qc "DROP DATABASE IF EXISTS \"$pg_db\" WITH (FORCE)" >/dev/null
        pg_db=""
    fi
}

clients_checked=""
for backend in "${backends[@]}"; do
    step "$backend: starting the server"
    start_server "$backend"
    curl -fsS "$base/openapi.json" -o "$work/openapi.json"

    if [ -z "$clients_checked" ]; then
        step "validating the spec"
        "$venv/bin/openapi-spec-validator" "$work/openapi.json"

        step "Python client: generate, import, one real call"
        # No post hooks: they would format the code with ruff, which CI does not need.
        printf 'post_hooks: []\n' >"$work/pyclient.yaml"
        (cd "$work" && "$venv/bin/openapi-python-client" generate --path openapi.json --config pyclient.yaml \
            --output-path juhe_client --meta none --overwrite </dev/null >gen.log 2>&1) \
            || { cat "$work/gen.log"; exit 1; }
        # A warning means part of the spec could not be turned into code.
        if grep -qi "warning" "$work/gen.log"; then cat "$work/gen.log"; echo "openapi-python-client could not use all of the spec"; exit 1; fi
        PYTHONPATH="$work" JUHE_BASE="$base" JUHE_TOKEN="$token" "$venv/bin/python" scripts/api-check-client.py

        step "TypeScript client: generate and type-check"
        mkdir -p "$work/ts"
        "$npm_prefix/node_modules/.bin/openapi-typescript" "$work/openapi.json" -o "$work/ts/juhe.ts" >/dev/null
        cp scripts/api-check-client.ts "$work/ts/main.ts"
        (cd "$work/ts" && "$npm_prefix/node_modules/.bin/tsc" --strict --noEmit --target es2022 \
            --module es2022 --moduleResolution bundler --lib es2022,dom main.ts)
        clients_checked=1
    fi

    step "$backend: Schemathesis on every operation ($examples examples each)"
    # Checks left out, and why (docs/api.md, "The OpenAPI document"):
    #   positive_data_acceptance, negative_data_rejection: the server reads bodies leniently and
    #     checks values (ranges, dates, existence) that a JSON schema cannot express, by design.
    # One worker: Hypothesis's source inspection is not thread-safe on Python 3.11 and fails
    # at random with "AST constructor recursion depth mismatch" under --workers 2.
    # Run from the scratch dir: Schemathesis keeps a cache (.schemathesis/) in the working
    # directory, which must not land in the clone.
    (cd "$work" && "$venv/bin/schemathesis" run "$base/openapi.json" \
        --header "Authorization: Bearer $token" \
        --checks all \
        --exclude-checks positive_data_acceptance,negative_data_rejection \
        --max-examples "$examples" \
        --seed "${JUHE_API_CHECK_SEED:-5}" \
        --workers 1 \
        --suppress-health-check all \
        </dev/null) \
        || { echo "--- server log (tail)"; tail -50 "$work/$backend/server.log"; exit 1; }
    stop_server
done
step "passed"
