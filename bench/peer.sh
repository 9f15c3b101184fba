#!/usr/bin/env bash
# Side-by-side benchmark: Groundgate and LiteLLM through the shared peer-bench harness, in one
# run, against the same fake upstream and the same load points.
#
#   bench/peer.sh [--quick] [--targets "groundgate groundgate-open litellm"] [--json PATH]
#                 [--conc "1 10 50 100"] [--stream-conc "50"] [--rates "200"]
#                 [--embed-conc ""] [--duration 10] [--warmup 2]
#
# Targets, one after the other, each pinned to the same core with the same load:
#   groundgate       a real deployment's set-up: an API key (auth required) whose key and
#                    tenant carry rate, token, concurrency and budget limits (set far above the
#                    load, so they are checked and settled on every request but never refuse),
#                    prices (spend is settled), traces written to the store
#   groundgate-open  the same config with auth.mode = "open": no key, no limits
#   litellm          LiteLLM 1.106.2 as the harness ships it (master key, no database)
# Default points are the harness README's reference table (c=1/10/50/100, SSE c=50, open loop
# 200 req/s; 10 s per measurement, 2 s warm-up): about 8 minutes for the three targets.
# --quick: one small point of each kind, 3 s each (~2 minutes), written to peer-quick.json so
# that a smoke run never replaces the real figures.
#
# Environment:
#   PEER_BENCH_DIR       the harness (default: ../shared/peer-bench from the repository root,
#                        or from the main checkout when this is a git worktree)
#   PEER_BENCH_STATE     venvs, per-run raw results, gateway stores (default: .peer-bench/)
#   GROUNDGATE_PY        Python that runs Groundgate (default: .venv/bin/python, else python3);
#                        this checkout's src/ is put first on its path
#   PEER_GATEWAY_CPUS    core(s) of the gateway under test (default 1)
#   PEER_LOAD_CPUS       core(s) of the load generator and fake upstream (default 0)
#   PEER_GATEWAY_PORT    Groundgate's port (default 18400); LITELLM_PORT LiteLLM's (4000)
#   BENCH_PY             Python of the harness's load generator (the harness's default if unset)
#   LITELLM_VENV         LiteLLM's venv (default $PEER_BENCH_STATE/litellm-venv; made if missing)
# Output: the markdown table on stdout, the combined JSON in bench/results/peer.json (--json),
# the harness's raw results of every target under $PEER_BENCH_STATE/results/peer-<time>/.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
LITELLM_VERSION=1.106.2   # the harness's reference version (litellm/setup.sh)

TARGETS="groundgate groundgate-open litellm"
CONC="1 10 50 100"; STREAM_CONC="50"; RATES="200"; EMBED_CONC=""; DUR=10; WARM=2
QUICK=0; JSON=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1; CONC="10"; STREAM_CONC="10"; RATES="50"; DUR=3; WARM=1; shift;;
    --targets) TARGETS="$2"; shift 2;;
    --json) JSON="$2"; shift 2;;
    --conc) CONC="$2"; shift 2;;
    --stream-conc) STREAM_CONC="$2"; shift 2;;
    --rates) RATES="$2"; shift 2;;
    --embed-conc) EMBED_CONC="$2"; shift 2;;
    --duration) DUR="$2"; shift 2;;
    --warmup) WARM="$2"; shift 2;;
    -h|--help) sed -n '2,33p' "$0"; exit 0;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2;;
  esac
done
for t in $TARGETS; do
  case "$t" in groundgate|groundgate-open|litellm) ;; *) echo "unknown target $t" >&2; exit 2;; esac
done
if [ -z "$JSON" ]; then
  if [ "$QUICK" = 1 ]; then JSON="$REPO/bench/results/peer-quick.json"; else JSON="$REPO/bench/results/peer.json"; fi
fi

# --- where things are -------------------------------------------------------------------------
find_harness() {
  if [ -n "${PEER_BENCH_DIR:-}" ]; then echo "$PEER_BENCH_DIR"; return; fi
  local main
  # In a git worktree, ../shared sits beside the main checkout rather than beside this one.
  main="$(cd "$REPO" && git rev-parse --path-format=absolute --git-common-dir 2>/dev/null || true)"
  for d in "$REPO/../shared/peer-bench" ${main:+"$(dirname "$main")/../shared/peer-bench"}; do
    if [ -x "$d/run_bench.sh" ]; then (cd "$d" && pwd); return; fi
  done
}
HARNESS="$(find_harness)"
if [ -z "$HARNESS" ] || [ ! -x "$HARNESS/run_bench.sh" ]; then
  echo "peer-bench harness not found (looked for ../shared/peer-bench); set PEER_BENCH_DIR" >&2
  exit 1
fi
export PEER_BENCH_STATE="${PEER_BENCH_STATE:-$REPO/.peer-bench}"
mkdir -p "$PEER_BENCH_STATE"
PEER_BENCH_STATE="$(cd "$PEER_BENCH_STATE" && pwd)"

GG_PY="${GROUNDGATE_PY:-}"
if [ -z "$GG_PY" ]; then
  if [ -x "$REPO/.venv/bin/python" ]; then GG_PY="$REPO/.venv/bin/python"; else GG_PY=python3; fi
fi
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"   # as the Makefile: nothing fetched at run time
"$GG_PY" -c "import groundgate" 2>/dev/null || {
  echo "$GG_PY cannot import groundgate (make install, or set GROUNDGATE_PY)" >&2; exit 1; }

GW_CPUS="${PEER_GATEWAY_CPUS:-1}"; LOAD_CPUS="${PEER_LOAD_CPUS:-0}"
if [ "$(nproc)" -lt 2 ] && [ -z "${PEER_GATEWAY_CPUS:-}" ]; then
  GW_CPUS=0; echo "warning: one CPU only; gateway and load share it (figures not comparable)" >&2
fi
GW_PORT="${PEER_GATEWAY_PORT:-18400}"
export LITELLM_PORT="${LITELLM_PORT:-4000}" LITELLM_CPUS="$GW_CPUS"

STAMP="$(date +%Y%m%d-%H%M%S)"
RUN_DIR="$PEER_BENCH_STATE/results/peer-$STAMP"
mkdir -p "$RUN_DIR"
POINTS=(--conc "$CONC" --stream-conc "$STREAM_CONC" --rates "$RATES" --embed-conc "$EMBED_CONC"
        --duration "$DUR" --warmup "$WARM" --load-cpus "$LOAD_CPUS")

GW_PID=""
stop_groundgate() {
  if [ -n "$GW_PID" ]; then
    kill -TERM "$GW_PID" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$GW_PID" 2>/dev/null || break; sleep 0.25; done
    kill -KILL "$GW_PID" 2>/dev/null || true
    wait "$GW_PID" 2>/dev/null || true
    GW_PID=""
  fi
}
trap stop_groundgate EXIT
trap 'exit 130' INT TERM

port_busy() { curl -s -o /dev/null -m 2 "http://127.0.0.1:$1/" 2>/dev/null; }

# --- LiteLLM: its own venv, pinned version ---------------------------------------------------
if [[ " $TARGETS " == *" litellm "* ]]; then
  LITELLM_VENV="${LITELLM_VENV:-$PEER_BENCH_STATE/litellm-venv}"; export LITELLM_VENV
  if [ ! -x "$LITELLM_VENV/bin/litellm" ]; then
    echo "installing LiteLLM $LITELLM_VERSION into $LITELLM_VENV (once; ~2 minutes, ~750 MB)"
  fi
  LITELLM_VERSION="$LITELLM_VERSION" "$HARNESS/litellm/setup.sh" > "$RUN_DIR/litellm-setup.log" 2>&1 || {
    echo "LiteLLM setup failed; see $RUN_DIR/litellm-setup.log" >&2; tail -5 "$RUN_DIR/litellm-setup.log" >&2; exit 1; }
  HAVE="$("$LITELLM_VENV/bin/pip" show litellm 2>/dev/null | sed -n 's/^Version: //p')"
  if [ "$HAVE" != "$LITELLM_VERSION" ]; then
    echo "$LITELLM_VENV holds LiteLLM $HAVE, not $LITELLM_VERSION: remove it or set LITELLM_VENV" >&2
    exit 1
  fi
fi

# --- Groundgate ------------------------------------------------------------------------------
# The model and embedder names are the harness's (bench-model, bench-embed); the fake upstream
# listens on 18080, as in the harness's LiteLLM config.
write_config() {  # $1 = folder, $2 = auth mode
  cat > "$1/groundgate.toml" <<EOF
[server]
log_level = "warning"

[store]
path = "$1/groundgate.db"

[auth]
mode = "$2"

[providers.upstream]
type = "openai"
base_url = "http://127.0.0.1:18080/v1"
api_key_env = "PEER_BENCH_UPSTREAM_KEY"
max_connections = 1024

[models.bench-model]
deployments = ["upstream:bench-model"]

[embedders.bench-embed]
deployments = ["upstream:bench-embed"]

[prices."upstream:bench-model"]
input_per_mtok = 0.15
output_per_mtok = 0.60
EOF
}

create_key() {  # $1 = config; prints the key. Limits far above any load point, budgets too.
  local limits=(--rpm 10000000 --tpm 1000000000 --concurrent 5000) out
  "$GG_PY" -m groundgate keys tenants set peer-bench --config "$1" "${limits[@]}" \
    --daily-budget 1000000 --monthly-budget 10000000 --json > /dev/null
  out="$("$GG_PY" -m groundgate keys create --config "$1" --tenant peer-bench --name peer-bench \
    --scope chat --scope embeddings "${limits[@]}" --daily-budget 1000000 --max-tokens 4096 --json)"
  "$GG_PY" -c 'import json, sys; print(json.loads(sys.argv[1]).get("key", ""))' "$out"
}

run_groundgate() {  # $1 = target name, $2 = auth mode
  local dir="$RUN_DIR/$1-gateway" key=""
  mkdir -p "$dir"
  write_config "$dir" "$2"
  if [ "$2" = required ]; then
    key="$(create_key "$dir/groundgate.toml")"
    [ -n "$key" ] || { echo "could not create an API key for the benchmark" >&2; exit 1; }
  fi
  if port_busy "$GW_PORT"; then echo "port $GW_PORT is in use; set PEER_GATEWAY_PORT" >&2; exit 1; fi
  (cd "$dir" && PEER_BENCH_UPSTREAM_KEY=sk-fake-upstream exec taskset -c "$GW_CPUS" \
      "$GG_PY" -m groundgate serve --config "$dir/groundgate.toml" --host 127.0.0.1 \
      --port "$GW_PORT" > "$dir/serve.log" 2>&1) &
  GW_PID=$!
  for _ in $(seq 1 240); do
    curl -sf "http://127.0.0.1:$GW_PORT/healthz" > /dev/null 2>&1 && break
    kill -0 "$GW_PID" 2>/dev/null || { echo "groundgate exited; see $dir/serve.log" >&2; tail -20 "$dir/serve.log" >&2; exit 1; }
    sleep 0.25
  done
  curl -sf "http://127.0.0.1:$GW_PORT/healthz" > /dev/null || { echo "groundgate not ready after 60 s" >&2; exit 1; }
  "$HARNESS/run_bench.sh" --gateway "http://127.0.0.1:$GW_PORT" --gateway-pid "$GW_PID" \
    --key "$key" --label "$1" --out "$RUN_DIR/$1" "${POINTS[@]}"
  stop_groundgate
}

run_litellm() {
  if port_busy "$LITELLM_PORT"; then echo "port $LITELLM_PORT is in use; set LITELLM_PORT" >&2; exit 1; fi
  "$HARNESS/litellm/run.sh" --label litellm --out "$RUN_DIR/litellm" "${POINTS[@]}"
}

echo "peer benchmark: targets [$TARGETS], harness $HARNESS, raw results in $RUN_DIR"
STARTED=$SECONDS
ARGS=()
for t in $TARGETS; do
  echo "=== $t ==="
  case "$t" in
    groundgate) run_groundgate groundgate required;;
    groundgate-open) run_groundgate groundgate-open open;;
    litellm) run_litellm;;
  esac
  ARGS+=(--target "$t=$RUN_DIR/$t")
done

COMMIT="$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)"
[ -n "$(git -C "$REPO" status --porcelain -- src 2>/dev/null)" ] && COMMIT="$COMMIT+dirty"
echo
"$GG_PY" "$REPO/bench/peer_summary.py" --json "$JSON" "${ARGS[@]}" \
  --meta "groundgate_commit=$COMMIT" --meta "litellm_version=$LITELLM_VERSION" \
  --meta "gateway_cpus=$GW_CPUS" --meta "raw_results=$RUN_DIR" --wall-s $(( SECONDS - STARTED )) \
  $([ "$QUICK" = 1 ] && echo --quick)
