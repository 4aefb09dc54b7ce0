#!/usr/bin/env bash
# Benchmark: the companion controller at scale, on real local control planes (etcd +
# kube-apiserver + kube-controller-manager from `egress-webhook dev --detach`), all in one run.
# Results: bench/results/controller-scale.md (table) and .json (raw numbers, per-second samples).
#
#   floor     a fresh control plane, its webhook frozen and unregistered: the companions that
#             `egress-webhook render` prints for the input, applied server-side by kubectl
#             (PARALLEL processes, CHUNK objects each): creates per second at the apiserver's pace.
#             That control plane is stopped before the next one starts.
#   store     the main control plane, its webhook frozen: `dev` runs the webhook inside its own
#             process, so it cannot be stopped alone; SIGSTOP freezes it (the control plane runs in
#             child processes and carries on). The webhook configurations are pointed at
#             `serve --objects INPUT` (admission with the input as catalog and no controller: the
#             parents are defaulted and validated as in production, and no companion is written),
#             and N_ES ExternalServices + N_AP AccessPolicies + N_VG VirtualGateways are stored with
#             kubectl apply --server-side (PARALLEL x CHUNK). No companion may exist afterwards.
#   converge  `serve --kubeconfig` (the webhook with its controller, as dev's webhook identity)
#             starts on the same address; /metrics every second until every companion equals
#             `render` (full comparison of kind, namespace, name, spec, labels, annotations).
#   idle      IDLE_SECONDS with the webhook running: companion writes (metric, must be 0),
#             kube-apiserver CPU seconds (utime+stime of /proc/PID/stat), the requests it served
#             and its Go GC cycles (its /metrics); then as long with the webhook stopped. Each
#             window starts SETTLE_SECONDS after the work before it (the comparison lists every
#             companion, which leaves the apiserver garbage to collect).
#   restart   the webhook starts again: writes during RESTART_SECONDS after /readyz (must be 0).
#   admission a fresh `dev` (webhook and controller in-process, as `make dev` runs it):
#             kubectl apply -f of `gen_scale.py OUT ADMISSION_N ADMISSION_G` (621 objects): wall
#             time and companion writes.
#
# Quick run: N_ES=500 N_AP=250 N_VG=10 IDLE_SECONDS=30 SETTLE_SECONDS=5 bench/controller-scale.sh
# (RESULTS_DIR=DIR writes the results elsewhere than bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N_ES=${N_ES:-20000}
N_AP=${N_AP:-10000}
N_VG=${N_VG:-100}
IDLE_SECONDS=${IDLE_SECONDS:-600}
RESTART_SECONDS=${RESTART_SECONDS:-60}
PARALLEL=${PARALLEL:-8}
CHUNK=${CHUNK:-500}
CONVERGE_TIMEOUT=${CONVERGE_TIMEOUT:-1800}
ADMISSION_N=${ADMISSION_N:-300}
ADMISSION_G=${ADMISSION_G:-10}
OUT=$ROOT/bench/out/controller-scale
SETTLE_SECONDS=${SETTLE_SECONDS:-60}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
RESULTS_MD=$RESULTS_DIR/controller-scale.md
RESULTS_JSON=$RESULTS_DIR/controller-scale.json
BIN=$ROOT/target/release/egress-webhook
PY="python3 $ROOT/bench/controller_scale.py"
CLK_TCK=$(getconf CLK_TCK)
SELECTOR=app.kubernetes.io/managed-by=egress-webhook
KINDS=(serviceentries.networking.istio.io gateways.networking.istio.io
  destinationrules.networking.istio.io virtualservices.networking.istio.io
  authorizationpolicies.security.istio.io peerauthentications.security.istio.io)

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.3f", a - b }'; }
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }
# One result: "key<TAB>value" (bench/controller_scale.py results turns them into JSON).
rec() { printf '%s\t%s\n' "$1" "$2" >>"$OUT/values.tsv"; }

# --- what this script starts, stopped on exit -----------------------------------------------------
DEV_DIRS=()  # state dirs of `dev --detach` runs still up
FROZEN=()    # pids stopped with SIGSTOP
SERVE_PID="" # our `serve`

stop_serve() {
  [ -n "$SERVE_PID" ] || return 0
  kill -TERM "$SERVE_PID" 2>/dev/null || true
  local i
  for i in $(seq 150); do
    kill -0 "$SERVE_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$SERVE_PID" 2>/dev/null || true
  wait "$SERVE_PID" 2>/dev/null || true
  SERVE_PID=""
}

thaw() {
  local p
  for p in "${FROZEN[@]}"; do kill -CONT "$p" 2>/dev/null || true; done
  FROZEN=()
}

dev_down() { # DIR
  local d=$1 rest=() x
  thaw
  "$BIN" dev --down --state-dir "$d" >>"$OUT/dev-down.log" 2>&1 || log "dev --down $d failed (see $OUT/dev-down.log)"
  for x in "${DEV_DIRS[@]}"; do [ "$x" = "$d" ] || rest+=("$x"); done
  DEV_DIRS=("${rest[@]}")
}

cleanup() {
  local status=$? d
  trap - EXIT INT TERM
  stop_serve
  thaw
  for d in "${DEV_DIRS[@]}"; do
    "$BIN" dev --down --state-dir "$d" >>"$OUT/dev-down.log" 2>&1 || true
  done
  [ "$status" = 0 ] || log "exit status $status; logs in $OUT"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- a control plane ------------------------------------------------------------------------------
# dev_up NAME: sets DEV_DIR DEV_PID KCFG KUBECTL RUN_DIR WEBHOOK_URL USER_KCFG APISERVER_PID ETCD_PID
dev_up() {
  DEV_DIR=$OUT/cp-$1
  log "starting control plane '$1' (egress-webhook dev --detach --state-dir $DEV_DIR)"
  DEV_DIRS+=("$DEV_DIR")
  "$BIN" dev --detach --state-dir "$DEV_DIR" >"$OUT/dev-$1.out" 2>&1 || {
    cat "$OUT/dev-$1.out" >&2
    die "dev --detach ($1)"
  }
  DEV_PID=$($PY field "$DEV_DIR/ready" pid)
  KCFG=$($PY field "$DEV_DIR/ready" kubeconfig)
  KUBECTL=$($PY field "$DEV_DIR/ready" kubectl)
  WEBHOOK_URL=$($PY field "$DEV_DIR/ready" webhook)
  local dirs=("$DEV_DIR"/egress-cp-*)
  RUN_DIR=${dirs[0]}
  USER_KCFG=$($PY field "$DEV_DIR/ready" webhook_kubeconfig)
  WRITER_IDENTITY=$($PY field "$DEV_DIR/ready" webhook_identity)
  CLIENT_CA=$($PY field "$DEV_DIR/ready" webhook_client_ca)
  DEV_METRICS=$($PY field "$DEV_DIR/ready" metrics)
  [ -f "$USER_KCFG" ] || die "no kubeconfig of dev's webhook identity in $DEV_DIR/ready"
  APISERVER_PID=$(child_pid kube-apiserver)
  ETCD_PID=$(child_pid etcd)
  [ -n "$APISERVER_PID" ] && [ -n "$ETCD_PID" ] || die "kube-apiserver/etcd not found among the children of $DEV_PID"
  log "  up: dev pid $DEV_PID, kube-apiserver pid $APISERVER_PID, etcd pid $ETCD_PID"
}

child_pid() { # COMM: the child of DEV_PID with that command name
  local ps_out
  ps_out=$(ps -o pid=,comm= --ppid "$DEV_PID" || true)
  awk -v c="$1" '$2 == c { print $1; exit }' <<<"$ps_out"
}

# Freezes dev's webhook: the dev process (its webhook runs in-process), and any webhook child it
# may have. The control plane processes are not touched.
freeze_dev_webhook() {
  local ps_out p
  kill -STOP "$DEV_PID"
  FROZEN+=("$DEV_PID")
  ps_out=$(ps -o pid=,comm= --ppid "$DEV_PID" || true)
  for p in $(awk '$2 == "egress-webhook" { print $1 }' <<<"$ps_out"); do
    kill -STOP "$p"
    FROZEN+=("$p")
  done
  local state
  state=$(awk '{ sub(/.*\) /, ""); print $1 }' "/proc/$DEV_PID/stat")
  [ "$state" = T ] || die "dev pid $DEV_PID is in state $state after SIGSTOP"
  log "  dev's in-process webhook frozen (pid $DEV_PID stopped)"
}

kc() { "$KUBECTL" --kubeconfig "$KCFG" "$@"; }

unregister_webhook() {
  kc delete validatingwebhookconfiguration egress-webhook --ignore-not-found >/dev/null
  kc delete mutatingwebhookconfiguration egress-webhook --ignore-not-found >/dev/null
}

cpu_ticks() { # PID: utime+stime in clock ticks
  local s
  s=$(cat "/proc/$1/stat")
  s=${s##*) }
  # shellcheck disable=SC2086
  set -- $s
  echo $((${12} + ${13}))
}

# Every companion in the cluster (one kubectl get per kind) into DIR/<kind>.json.
dump_companions() { # DIR
  local k
  mkdir -p "$1"
  for k in "${KINDS[@]}"; do
    kc get "$k" -A -l "$SELECTOR" -o json >"$1/$k.json"
  done
}

count_companions() {
  local names
  names=$(kc get "$(IFS=,; echo "${KINDS[*]}")" -A -l "$SELECTOR" -o name)
  if [ -z "$names" ]; then echo 0; else wc -l <<<"$names"; fi
}

# compare NAME RENDER: the cluster's companions against RENDER; summary in OUT/compare-NAME.json.
compare() {
  rm -rf "$OUT/dump-$1"
  dump_companions "$OUT/dump-$1"
  if $PY compare "$2" "$OUT/dump-$1"/*.json >"$OUT/compare-$1.json"; then return 0; else return 1; fi
}

# kubectl apply --server-side of every chunk file in DIR, PARALLEL at a time (FIELD_MANAGER).
apply_chunks() { # DIR FIELD_MANAGER
  local status=0 f
  # shellcheck disable=SC2016
  find "$1" -name 'c-*.yaml' | sort | xargs -P "$PARALLEL" -I{} sh -c \
    '"$0" --kubeconfig "$1" apply --server-side --field-manager="$2" -f "$3" >"$3.out" 2>&1' \
    "$KUBECTL" "$KCFG" "$2" {} || status=$?
  if [ "$status" != 0 ]; then
    for f in "$1"/c-*.yaml.out; do
      if grep -qiE 'error|denied' "$f"; then
        log "  $f:"
        head -5 "$f" >&2
      fi
    done
    die "kubectl apply of the chunks in $1 (xargs status $status)"
  fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# --- our webhook process --------------------------------------------------------------------------
WH_PORT=$(free_port)
M_PORT=$(free_port)
METRICS_URL=http://127.0.0.1:$M_PORT

start_serve() { # file|cluster LOGNAME
  local args=(serve --tls-cert "$OUT/certs/tls.crt" --tls-key "$OUT/certs/tls.key"
    --listen "127.0.0.1:$WH_PORT" --metrics-listen "127.0.0.1:$M_PORT" --cluster-name cluster1
    --shutdown-delay 0s --shutdown-grace 2s)
  if [ "$1" = file ]; then
    args+=(--objects "$SCALE")
  else
    # As deployed: only the apiserver's client certificate gets a review answered.
    args+=(--kubeconfig "$USER_KCFG" --writer-identity "$WRITER_IDENTITY" --lease-namespace egress-webhook
      --client-ca "$CLIENT_CA" --client-allowed-names kube-apiserver-webhook-client)
  fi
  "$BIN" "${args[@]}" >"$OUT/$2.log" 2>&1 &
  SERVE_PID=$!
}

serve_ready() { curl -sf -m 2 "$METRICS_URL/readyz" >/dev/null 2>&1; }

wait_serve_ready() { # TIMEOUT_SECONDS
  local deadline=$((SECONDS + $1))
  until serve_ready; do
    kill -0 "$SERVE_PID" 2>/dev/null || die "serve exited; tail of its log: $(tail -20 "$OUT"/serve-*.log)"
    [ "$SECONDS" -lt "$deadline" ] || die "serve not ready within $1 s"
    sleep 0.1
  done
}

# sample PHASE T0 [URL CURL_OPTS...]: one metrics read, appended to OUT/samples.tsv; sets
# Q C U D R L RD (queue, creates, updates, deletes, last complete resync, leader, reads). Returns 1
# when the metrics cannot be read.
sample() {
  local phase=$1 t0=$2 url=${3:-$METRICS_URL/metrics} t epoch line
  shift 3 2>/dev/null || shift $#
  epoch=$(now)
  curl -sf -m 5 "$@" "$url" -o "$OUT/metrics.last" 2>/dev/null || return 1
  line=$($PY metrics "$OUT/metrics.last")
  read -r Q C U D R L RD <<<"$line"
  t=$(awk -v a="$epoch" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
  printf '%s %s %s %s\n' "$phase" "$t" "$epoch" "$line" >>"$OUT/samples.tsv"
}

# apiserver_window NAME start|end: the apiserver's /metrics at the start or end of a window; at the
# end, the requests served and GC cycles in between go to OUT/apiserver-NAME.json and values.tsv.
apiserver_window() {
  kc get --raw /metrics >"$OUT/apiserver-$1-$2.txt"
  if [ "$2" = end ]; then
    $PY apidiff "$OUT/apiserver-$1-start.txt" "$OUT/apiserver-$1-end.txt" >"$OUT/apiserver-$1.json"
    rec "$1.apiserver_requests" "$($PY field "$OUT/apiserver-$1.json" requests)"
    rec "$1.apiserver_gc_cycles" "$($PY field "$OUT/apiserver-$1.json" gc_cycles)"
  fi
}

# cpu_sample PHASE T0: kube-apiserver's and etcd's CPU ticks so far, appended to OUT/cpu.tsv.
cpu_sample() {
  printf '%s %s %s %s\n' "$1" "$(since "$2")" "$(cpu_ticks "$APISERVER_PID")" "$(cpu_ticks "$ETCD_PID")" >>"$OUT/cpu.tsv"
}

# ==================================================================================================
START=$(now)
START_S=$SECONDS
for d in "$OUT"/cp-*; do
  [ -d "$d" ] && "$BIN" dev --down --state-dir "$d" >/dev/null 2>&1 || true
done
rm -rf "$OUT"
mkdir -p "$OUT" "$(dirname "$RESULTS_MD")"
: >"$OUT/values.tsv"
: >"$OUT/samples.tsv"
: >"$OUT/cpu.tsv"

log "building (cargo build --release --locked)"
cargo build --release --locked --quiet

rec run.date "$(date -u +%Y-%m-%dT%H:%MZ)"
rec run.commit "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty=$(git status --porcelain -- src Cargo.toml Cargo.lock build.rs 2>/dev/null || true)
if [ -z "$dirty" ]; then rec run.src_dirty clean; else rec run.src_dirty "uncommitted changes in $(awk '{ print $2 }' <<<"$dirty" | paste -sd, -)"; fi
rec machine.nproc "$(nproc)"
rec machine.cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
rec machine.mem_gib "$(awk '/^MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo)"
rec machine.kernel "$(uname -r)"
rec machine.clk_tck "$CLK_TCK"
rec machine.load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
rec scale.n_es "$N_ES"
rec scale.n_ap "$N_AP"
rec scale.n_vg "$N_VG"
rec scale.idle_seconds "$IDLE_SECONDS"
rec scale.parallel "$PARALLEL"
rec scale.chunk "$CHUNK"
rec scale.settle_seconds "$SETTLE_SECONDS"

# --- inputs ---------------------------------------------------------------------------------------
SCALE=$OUT/scale.yaml
RENDER=$OUT/render.yaml
log "generating $N_ES ExternalServices, $N_AP AccessPolicies, $N_VG VirtualGateways"
python3 bench/gen_scale.py "$SCALE" "$N_ES" "$N_VG" "$N_AP" >/dev/null
"$BIN" render "$SCALE" >"$RENDER" 2>"$OUT/render.err" || die "render of the input: $(head -5 "$OUT/render.err")"
input_objects=$($PY split "$SCALE" "$OUT/parents" "$CHUNK")
companions=$($PY split "$RENDER" "$OUT/floor" "$CHUNK")
per_kind=$(grep '^kind: ' "$RENDER" | sort | uniq -c | awk '{ printf "%s%s %s", sep, $3, $1; sep = ", " }')
rec scale.input_objects "$input_objects"
rec scale.companions "$companions"
rec scale.companions_per_kind "$per_kind"
log "  $input_objects input objects; render: $companions companions ($per_kind)"
"$BIN" certs --dir "$OUT/certs" >/dev/null

# --- floor ----------------------------------------------------------------------------------------
dev_up floor
freeze_dev_webhook
unregister_webhook
$PY namespaces "$RENDER" | kc apply -f - >/dev/null
log "floor: kubectl apply --server-side of $companions companions ($PARALLEL x $CHUNK)"
t=$(now)
apply_chunks "$OUT/floor" bench-floor
floor_s=$(since "$t")
floor_n=$(count_companions)
[ "$floor_n" = "$companions" ] || die "floor: $floor_n companions stored, $companions expected"
rec floor.objects "$floor_n"
rec floor.seconds "$floor_s"
rec floor.creates_per_s "$(calc "$floor_n / $floor_s" 1)"
log "  floor: $floor_n in $floor_s s ($(calc "$floor_n / $floor_s" 1)/s)"
dev_down "$DEV_DIR"

# --- store the parents, no companions -------------------------------------------------------------
dev_up main
freeze_dev_webhook
unregister_webhook
# dev's controller held the Lease: free it now rather than wait for it to run out.
kc delete lease -n egress-webhook egress-webhook-controller --ignore-not-found >/dev/null
$PY namespaces "$SCALE" | kc apply -f - >/dev/null
start_serve file serve-store
wait_serve_ready 120
"$BIN" webhook-config --url "https://127.0.0.1:$WH_PORT" --ca-bundle "$OUT/certs/ca.crt" | kc apply -f - >/dev/null
# The apiserver calls the new registration once its informer has it: a probe must be defaulted.
probe='{"apiVersion":"networking.gloo.solo.io/v2","kind":"ExternalService","metadata":{"name":"probe","namespace":"default"},"spec":{"hosts":["probe.example.com"],"ports":[{"name":"http","number":80,"protocol":"HTTP"}]}}'
for i in $(seq 100); do
  out=$(kc create --dry-run=server -o json -f - <<<"$probe" 2>&1 || true)
  if [[ "$out" == *'"targetPort"'* ]]; then break; fi
  [ "$i" -lt 100 ] || die "the apiserver does not call serve --objects: $out"
  sleep 0.2
done
log "store: kubectl apply --server-side of $input_objects parents through admission ($PARALLEL x $CHUNK)"
t=$(now)
apply_chunks "$OUT/parents" kubectl
store_s=$(since "$t")
curl -sf "$METRICS_URL/metrics" -o "$OUT/metrics-store.txt" || true
stop_serve
n_es=$(kc get externalservices.networking.gloo.solo.io -A -o name | wc -l)
n_ap=$(kc get accesspolicies.security.policy.gloo.solo.io -A -o name | wc -l)
n_vg=$(kc get virtualgateways.networking.gloo.solo.io -A -o name | wc -l)
[ "$n_es" = "$N_ES" ] && [ "$n_ap" = "$N_AP" ] && [ "$n_vg" = "$N_VG" ] \
  || die "stored $n_es ExternalServices, $n_ap AccessPolicies, $n_vg VirtualGateways"
defaulted=$(kc get externalservices.networking.gloo.solo.io -n team-0 es-0 -o jsonpath='{.spec.ports[0].targetPort}')
[ -n "$defaulted" ] || die "es-0 is stored without the webhook's defaults"
store_companions=$(count_companions)
[ "$store_companions" = 0 ] || die "$store_companions companions exist before the controller ran"
rec store.objects "$input_objects"
rec store.seconds "$store_s"
rec store.companions_after "$store_companions"
log "  stored in $store_s s ($n_es ExternalServices, $n_ap AccessPolicies, $n_vg VirtualGateways, defaulted; 0 companions)"

# --- converge -------------------------------------------------------------------------------------
log "converge: starting the webhook with its controller (serve --kubeconfig, ServiceAccount egress-webhook)"
T0=$(now)
start_serve cluster serve-1
ready_s="" first_write_s="" last_write_s="" converged_s="" compared_at=-1 last_total=-1 stable_since=0
last_log=0
while :; do
  el=$(since "$T0")
  kill -0 "$SERVE_PID" 2>/dev/null || die "serve exited: $(tail -20 "$OUT/serve-1.log")"
  if awk -v e="$el" -v m="$CONVERGE_TIMEOUT" 'BEGIN { exit !(e > m) }'; then
    log "  not converged within $CONVERGE_TIMEOUT s"
    compare converge "$RENDER" || true
    break
  fi
  [ -n "$ready_s" ] || { serve_ready && ready_s=$el; } || true
  if ! sample converge "$T0"; then sleep 1; continue; fi
  total=$((C + U + D))
  t_now=$(awk '{ t = $2 } END { print t }' "$OUT/samples.tsv")
  [ -n "$first_write_s" ] || [ "$total" = 0 ] || first_write_s=$t_now
  if [ "$total" != "$last_total" ]; then last_total=$total; last_write_s=$t_now; stable_since=$SECONDS; fi
  if [ $((SECONDS - last_log)) -ge 10 ]; then
    log "  t=${el}s queue=$Q creates=$C updates=$U deletes=$D leader=$L"
    last_log=$SECONDS
  fi
  if [ "$Q" = 0 ] && [ "$L" = 1 ] && [ "$total" != "$compared_at" ] \
    && { [ "$C" -ge "$companions" ] || [ $((SECONDS - stable_since)) -ge 10 ]; }; then
    cand=$t_now
    log "  t=${cand}s queue empty, $C creates: comparing the cluster with render"
    compared_at=$total
    if compare converge "$RENDER"; then
      sample converge "$T0" || true
      if [ $((C + U + D)) = "$total" ]; then
        converged_s=$cand
        cp "$OUT/metrics.last" "$OUT/metrics-converged.txt"
        break
      fi
      log "  writes went on during the comparison; again"
    else
      log "  not equal yet: $(head -c 400 "$OUT/compare-converge.json")"
    fi
  fi
  sleep 1
done
[ -n "$converged_s" ] || die "the controller did not converge; $OUT/compare-converge.json"
rec converge.seconds "$converged_s"
rec converge.ready_s "${ready_s:-n/a}"
rec converge.first_write_s "${first_write_s:-n/a}"
rec converge.last_write_s "${last_write_s:-n/a}"
rec converge.creates "$C"
rec converge.updates "$U"
rec converge.deletes "$D"
rec converge.creates_per_s "$(calc "$C / $converged_s" 1)"
if [ -n "$first_write_s" ] && awk -v a="$last_write_s" -v b="$first_write_s" 'BEGIN { exit !(a > b) }'; then
  rec converge.write_phase_creates_per_s "$(calc "$C / ($last_write_s - $first_write_s)" 1)"
fi
log "  converged after ${converged_s}s: $C creates, $U updates, $D deletes ($(calc "$C / $converged_s" 1) creates/s; floor $(calc "$floor_n / $floor_s" 1)/s)"

# --- idle -----------------------------------------------------------------------------------------
log "idle: settling for $SETTLE_SECONDS s, then $IDLE_SECONDS s with the webhook running"
sleep "$SETTLE_SECONDS"
apiserver_window idle start
sample idle-start "$T0" || die "metrics"
w0=$((C + U + D)) r0=$RD resync0=$R
a0=$(cpu_ticks "$APISERVER_PID") e0=$(cpu_ticks "$ETCD_PID") s0=$(cpu_ticks "$SERVE_PID")
TI=$(now)
resyncs=0 last_r=$R
while awk -v e="$(since "$TI")" -v m="$IDLE_SECONDS" 'BEGIN { exit !(e < m) }'; do
  sleep 1
  cpu_sample idle "$TI"
  if sample idle "$TI"; then
    if [ "$R" != "$last_r" ]; then resyncs=$((resyncs + 1)); last_r=$R; fi
  fi
done
a1=$(cpu_ticks "$APISERVER_PID") e1=$(cpu_ticks "$ETCD_PID") s1=$(cpu_ticks "$SERVE_PID")
idle_s=$(since "$TI")
apiserver_window idle end
sample idle-end "$TI" || die "metrics"
cp "$OUT/metrics.last" "$OUT/metrics-idle-end.txt"
rec idle.seconds "$idle_s"
rec idle.writes "$((C + U + D - w0))"
rec idle.reads "$((RD - r0))"
rec idle.resyncs_completed "$resyncs"
rec idle.last_resync_before "$resync0"
rec idle.apiserver_cpu_s "$(calc "($a1 - $a0) / $CLK_TCK" 2)"
rec idle.etcd_cpu_s "$(calc "($e1 - $e0) / $CLK_TCK" 2)"
rec idle.webhook_cpu_s "$(calc "($s1 - $s0) / $CLK_TCK" 2)"
log "  writes $((C + U + D - w0)), reads $((RD - r0)), kube-apiserver $(calc "($a1 - $a0) / $CLK_TCK" 2) CPU s, full resyncs $resyncs"

log "idle: the webhook stopped; settling for $SETTLE_SECONDS s, then $IDLE_SECONDS s"
stop_serve
sleep "$SETTLE_SECONDS"
apiserver_window idle_stopped start
a0=$(cpu_ticks "$APISERVER_PID") e0=$(cpu_ticks "$ETCD_PID")
TI=$(now)
while awk -v e="$(since "$TI")" -v m="$IDLE_SECONDS" 'BEGIN { exit !(e < m) }'; do
  sleep 1
  cpu_sample idle-stopped "$TI"
done
a1=$(cpu_ticks "$APISERVER_PID") e1=$(cpu_ticks "$ETCD_PID")
rec idle_stopped.seconds "$(since "$TI")"
apiserver_window idle_stopped end
rec idle_stopped.apiserver_cpu_s "$(calc "($a1 - $a0) / $CLK_TCK" 2)"
rec idle_stopped.etcd_cpu_s "$(calc "($e1 - $e0) / $CLK_TCK" 2)"
log "  kube-apiserver $(calc "($a1 - $a0) / $CLK_TCK" 2) CPU s"

# --- restart --------------------------------------------------------------------------------------
log "restart: the webhook again; writes during the $RESTART_SECONDS s after it is ready"
T1=$(now)
start_serve cluster serve-2
wait_serve_ready 300
ready2_s=$(since "$T1")
TR=$(now)
sample restart "$T1" || die "metrics"
w0=$((C + U + D))
resync_done_s=""
if awk -v r="$R" -v t="$T1" 'BEGIN { exit !(r >= int(t)) }'; then
  resync_done_s=$(awk '{ t = $2 } END { print t }' "$OUT/samples.tsv")
fi
while awk -v e="$(since "$TR")" -v m="$RESTART_SECONDS" 'BEGIN { exit !(e < m) }'; do
  sleep 1
  if sample restart "$T1"; then
    # The gauge has whole seconds: a pass that ended after the start shows as >= int(start).
    if [ -z "$resync_done_s" ] && awk -v r="$R" -v t="$T1" 'BEGIN { exit !(r >= int(t)) }'; then
      resync_done_s=$(awk '{ t = $2 } END { print t }' "$OUT/samples.tsv")
    fi
  fi
done
cp "$OUT/metrics.last" "$OUT/metrics-restart-end.txt"
rec restart.window_s "$RESTART_SECONDS"
rec restart.ready_s "$ready2_s"
rec restart.writes_window "$((C + U + D - w0))"
rec restart.writes_since_start "$((C + U + D))"
rec restart.leader_at_end "$L"
rec restart.resync_done_s "${resync_done_s:-not within the window}"
log "  ready after ${ready2_s}s; writes in the window $((C + U + D - w0)), since start $((C + U + D)); full resync after ${resync_done_s:-never}s"
if compare restart "$RENDER"; then rec restart.companions_equal_render true; else rec restart.companions_equal_render false; fi
stop_serve
dev_down "$DEV_DIR"

# --- admission path -------------------------------------------------------------------------------
ADM=$OUT/admission.yaml
python3 bench/gen_scale.py "$ADM" "$ADMISSION_N" "$ADMISSION_G" >/dev/null
"$BIN" render "$ADM" >"$OUT/admission-render.yaml" 2>/dev/null || die "render of $ADM"
adm_companions=$(grep -c '^kind:' "$OUT/admission-render.yaml")
adm_objects=$(grep -c '^kind:' "$ADM")
dev_up admission
# dev's plain-HTTP metrics port: the admission port wants the apiserver's client certificate.
ADM_METRICS=$DEV_METRICS
$PY namespaces "$ADM" | kc apply -f - >/dev/null
sample admission-before "$(now)" "$ADM_METRICS" || die "metrics of dev's webhook"
w0=$((C + U + D))
log "admission: kubectl apply -f of $adm_objects objects through dev's webhook"
TA=$(now)
kc apply -f "$ADM" >"$OUT/admission-apply.log" 2>&1 || die "kubectl apply: $(tail -5 "$OUT/admission-apply.log")"
adm_s=$(since "$TA")
sample admission "$TA" "$ADM_METRICS" || die "metrics"
adm_w=$((C + U + D - w0))
# Settle: queue empty and no write for 10 s (at most 120 s).
last=-1 stable=0
for i in $(seq 120); do
  sleep 1
  sample admission "$TA" "$ADM_METRICS" || continue
  if [ "$((C + U + D))" = "$last" ] && [ "$Q" = 0 ]; then stable=$((stable + 1)); else stable=0; fi
  last=$((C + U + D))
  [ "$stable" -lt 10 ] || break
done
cp "$OUT/metrics.last" "$OUT/metrics-admission.txt"
rec admission.n "$ADMISSION_N"
rec admission.g "$ADMISSION_G"
rec admission.objects "$adm_objects"
rec admission.companions "$adm_companions"
rec admission.seconds "$adm_s"
rec admission.writes_at_return "$adm_w"
rec admission.writes_settled "$((C + U + D - w0))"
if compare admission "$OUT/admission-render.yaml"; then rec admission.companions_equal_render true; else rec admission.companions_equal_render false; fi
log "  $adm_objects objects in ${adm_s}s; $adm_w companion writes when apply returned, $((C + U + D - w0)) after settling"
dev_down "$DEV_DIR"

rec machine.load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
rec run.seconds "$((SECONDS - START_S))"
$PY results "$OUT" "$RESULTS_MD" "$RESULTS_JSON"
cat "$RESULTS_MD"
