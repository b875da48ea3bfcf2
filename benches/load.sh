#!/usr/bin/env bash
# Load benchmark: portal-proxy against nginx, on this machine, in one run,
# reported as ratios (portal-proxy / nginx). See benches/README.md.
#
#   bash benches/load.sh
#
# Both proxies terminate TLS on 127.0.0.1 with the same certificate and
# forward to the same upstream (a separate nginx returning a fixed 1 KiB
# body over keep-alive connections); wrk drives each in turn with the same
# settings. Everything listens on loopback only; the run is bounded in time
# (about 1.5 minutes after the release build with the defaults).
#
# Environment (defaults in brackets):
#   THREADS [2]          portal-proxy server.threads = nginx worker_processes
#   UPSTREAM_WORKERS [1] worker_processes of the upstream nginx
#   WRK_THREADS [2]  WRK_CONNECTIONS [64]
#   DURATION [10]        seconds of each measured wrk run
#   WARMUP [2]           seconds of the unmeasured wrk run before each proxy's first round
#   ROUNDS [2]           measured runs per proxy and scenario (order alternates)
#   SKIP_BUILD [0]       1: use the existing target/release/portal-proxy
#   KEEP_WORK [0]        1: keep the temp dir (configs, certificates, logs)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/release/portal-proxy"
REPORT="$TARGET_DIR/load-report.txt"

THREADS="${THREADS:-2}"
UPSTREAM_WORKERS="${UPSTREAM_WORKERS:-1}"
WRK_THREADS="${WRK_THREADS:-2}"
WRK_CONNECTIONS="${WRK_CONNECTIONS:-64}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-2}"
SKIP_BUILD="${SKIP_BUILD:-0}"
KEEP_WORK="${KEEP_WORK:-0}"

log() { printf '[load] %s\n' "$*" >&2; }
die() { printf '[load] FAIL: %s\n' "$*" >&2; exit 1; }

# --- tools -------------------------------------------------------------------
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v ss >/dev/null 2>&1 || missing+=(iproute2)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]} (apt-get)"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
NGINX="$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)"

if [ "$SKIP_BUILD" != 1 ]; then
    log "cargo build --release"
    (cd "$ROOT" && cargo build --release --quiet)
fi
[ -x "$BIN" ] || die "$BIN is missing (cargo build --release)"

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"

# --- temp dir and cleanup ------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/portal-proxy-load.XXXXXX")"
WRK_PID=""  # the wrk run in progress (under timeout)
PIDS=()   # every process started
SIGS=()   # with this signal: nginx stops at once on TERM, Pingora on INT
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i pid
    [ -z "$WRK_PID" ] || kill -TERM "$WRK_PID" 2>/dev/null || true
    for i in "${!PIDS[@]}"; do
        kill -"${SIGS[$i]}" "${PIDS[$i]}" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "$rc" -ne 0 ] && [ -d "$WORK" ]; then
        for f in "$WORK"/*.log; do
            [ -s "$f" ] || continue
            printf '[load] --- last lines of %s\n' "$(basename "$f")" >&2
            tail -n 20 "$f" >&2 || true
        done
    fi
    if [ "$KEEP_WORK" = 1 ]; then log "files kept in $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port VAR: sets VAR to a free loopback port below the ephemeral range,
# never the same twice (not in a subshell, so USED_PORTS is kept).
USED_PORTS=" "
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 12000))
        case "$USED_PORTS" in *" $p "*) continue ;; esac
        if [ -z "$(ss -Hltn "sport = :$p" 2>/dev/null)" ]; then
            USED_PORTS="$USED_PORTS$p "
            printf -v "$1" '%s' "$p"
            return 0
        fi
    done
    die "no free port found"
}

free_port UPSTREAM_PORT
free_port PORTAL_PORT
free_port NGINX_PORT

# --- identity, CA and wildcard certificate -------------------------------------
"$BIN" keygen "$WORK/identity.pem" >/dev/null
SHORT_ID="$("$BIN" id "$WORK/identity.pem" | awk '$1 == "short_id:" {print $2}')"
[ -n "$SHORT_ID" ] || die "no short_id from 'portal-proxy id'"
DOMAIN="$SHORT_ID.bench.test"
HOST="bench.$DOMAIN"
log "Portal domain $DOMAIN, requests to Host $HOST"

(
    cd "$WORK"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout ca-key.pem -out ca.pem -days 2 -subj "/CN=portal-proxy load CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout key.pem -out leaf.csr -subj "/CN=*.$DOMAIN" 2>/dev/null
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:*.%s,DNS:%s\n' \
        "$DOMAIN" "$DOMAIN" >leaf.ext
    openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -out cert.pem -days 2 -extfile leaf.ext 2>/dev/null
)

# --- upstream: nginx with a fixed 1 KiB body -----------------------------------
BODY="$(printf '%*s' 1024 '' | tr ' ' 'x')"
nginx_common() { # $1 = name, $2 = worker_processes
    cat <<EOF
worker_processes $2;
pid $WORK/nginx-$1/nginx.pid;
error_log $WORK/nginx-$1.log warn;
events { worker_connections 4096; }
EOF
}
mkdir -p "$WORK/nginx-upstream" "$WORK/nginx-proxy"
{
    nginx_common upstream "$UPSTREAM_WORKERS"
    cat <<EOF
http {
    access_log off;
    client_body_temp_path $WORK/nginx-upstream/client_body;
    proxy_temp_path $WORK/nginx-upstream/proxy;
    fastcgi_temp_path $WORK/nginx-upstream/fastcgi;
    uwsgi_temp_path $WORK/nginx-upstream/uwsgi;
    scgi_temp_path $WORK/nginx-upstream/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        default_type text/plain;
        location = /headers {
            return 200 "host=\$http_host xff=\$http_x_forwarded_for proto=\$http_x_forwarded_proto xfh=\$http_x_forwarded_host conn=\$http_connection\n";
        }
        location / { return 200 "$BODY"; }
    }
}
EOF
} >"$WORK/nginx-upstream.conf"

# --- the comparison proxy: nginx, configured like portal-proxy ------------------
{
    nginx_common proxy "$THREADS"
    cat <<EOF
http {
    access_log off;
    client_body_temp_path $WORK/nginx-proxy/client_body;
    proxy_temp_path $WORK/nginx-proxy/proxy;
    fastcgi_temp_path $WORK/nginx-proxy/fastcgi;
    uwsgi_temp_path $WORK/nginx-proxy/uwsgi;
    scgi_temp_path $WORK/nginx-proxy/scgi;
    # portal-proxy serves at most 1000 requests on an HTTP/1 connection
    # (nginx's default too) and keeps 128 idle upstream connections.
    keepalive_requests 1000;
    upstream bench {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 10000000;
    }
    server {
        listen 127.0.0.1:$NGINX_PORT ssl;
        server_name $DOMAIN *.$DOMAIN;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host \$http_host;
        }
    }
}
EOF
} >"$WORK/nginx-proxy.conf"

# --- portal-proxy ----------------------------------------------------------------
mkdir -p "$WORK/state/apps/bench"
echo '{"port": 80, "paths": {"": {"access": "public"}}}' >"$WORK/state/apps/bench/app_meta.json"
cat >"$WORK/portal-proxy.yaml" <<EOF
portal: { key_file: identity.pem, base_domain: bench.test }
state_dir: state
listen: { https: 127.0.0.1:$PORTAL_PORT }
tls: { cert_file: cert.pem, key_file: key.pem }
home_app: bench
core: { upstream: 127.0.0.1:$UPSTREAM_PORT }
upstreams: { bench: 127.0.0.1:$UPSTREAM_PORT }
access_log: { enabled: false }
server: { threads: $THREADS, pid_file: portal-proxy.pid, upgrade_sock: upgrade.sock,
          grace_period_seconds: 0, graceful_shutdown_timeout_seconds: 1 }
EOF

for name in upstream proxy; do
    "$NGINX" -t -q -p "$WORK/nginx-$name/" -e "$WORK/nginx-$name.log" -c "$WORK/nginx-$name.conf" \
        || die "nginx -t refused nginx-$name.conf"
done
"$BIN" -t -c "$WORK/portal-proxy.yaml" >"$WORK/portal-proxy-check.log" 2>&1 \
    || die "portal-proxy -t refused the config: $(cat "$WORK/portal-proxy-check.log")"

"$NGINX" -p "$WORK/nginx-upstream/" -e "$WORK/nginx-upstream.log" -c "$WORK/nginx-upstream.conf" \
    -g 'daemon off;' >>"$WORK/nginx-upstream.log" 2>&1 &
UPSTREAM_PID=$!; PIDS+=("$UPSTREAM_PID"); SIGS+=(TERM)
"$NGINX" -p "$WORK/nginx-proxy/" -e "$WORK/nginx-proxy.log" -c "$WORK/nginx-proxy.conf" \
    -g 'daemon off;' >>"$WORK/nginx-proxy.log" 2>&1 &
NGINX_PID=$!; PIDS+=("$NGINX_PID"); SIGS+=(TERM)
# wrk sends the URL's IP address as SNI, which rustls ignores with a warning
# per handshake: keep those lines out of the measurement.
RUST_LOG="warn,rustls=error" "$BIN" -c "$WORK/portal-proxy.yaml" >"$WORK/portal-proxy.log" 2>&1 &
PORTAL_PID=$!; PIDS+=("$PORTAL_PID"); SIGS+=(INT)

# get URL [curl args...]: prints the status, the body goes to $WORK/body.
get() {
    local url="$1"; shift
    curl -sk --max-time 5 -H "Host: $HOST" "$@" -o "$WORK/body" -w '%{http_code}' "$url"
}
wait_ready() { # $1 = name, $2 = pid, $3 = url
    for _ in $(seq 100); do
        kill -0 "$2" 2>/dev/null || die "$1 exited at start"
        if [ "$(get "$3" 2>/dev/null || true)" = 200 ]; then return 0; fi
        sleep 0.1
    done
    die "$1 does not answer 200 on $3 within 10 s"
}
wait_ready upstream "$UPSTREAM_PID" "http://127.0.0.1:$UPSTREAM_PORT/"
wait_ready portal-proxy "$PORTAL_PID" "https://127.0.0.1:$PORTAL_PORT/"
wait_ready nginx "$NGINX_PID" "https://127.0.0.1:$NGINX_PORT/"

# Both proxies return the upstream's body and send it the same forwarding headers.
for port in "$PORTAL_PORT" "$NGINX_PORT"; do
    [ "$(get "https://127.0.0.1:$port/")" = 200 ] || die "port $port: not 200"
    cmp -s "$WORK/body" <(printf '%s' "$BODY") || die "port $port: not the upstream's 1 KiB body"
done
# With and without the client's "Connection: close" (a hop-by-hop header
# neither proxy may pass on: the upstream connection stays open).
for conn in keep-alive close; do
    get "https://127.0.0.1:$PORTAL_PORT/headers" -H "Connection: $conn" >/dev/null
    PORTAL_HEADERS="$(cat "$WORK/body")"
    get "https://127.0.0.1:$NGINX_PORT/headers" -H "Connection: $conn" >/dev/null
    NGINX_HEADERS="$(cat "$WORK/body")"
    log "client Connection: $conn; the upstream receives from portal-proxy: $PORTAL_HEADERS"
    log "client Connection: $conn; the upstream receives from nginx:        $NGINX_HEADERS"
    [ "$PORTAL_HEADERS" = "$NGINX_HEADERS" ] || die "the proxies forward different headers"
done
TLS_PORTAL="$(openssl s_client -connect "127.0.0.1:$PORTAL_PORT" -servername "$HOST" </dev/null 2>/dev/null \
    | awk '/^New, /{print $2, $5}' | head -n 1 || true)"
TLS_NGINX="$(openssl s_client -connect "127.0.0.1:$NGINX_PORT" -servername "$HOST" </dev/null 2>/dev/null \
    | awk '/^New, /{print $2, $5}' | head -n 1 || true)"
log "TLS (openssl client): portal-proxy $TLS_PORTAL, nginx $TLS_NGINX"

# --- measurement -------------------------------------------------------------------
CLK_TCK="$(getconf CLK_TCK)"
# CPU ticks (user + system) of a process and its children's threads: a process
# tree here is portal-proxy (one process) or nginx (master + workers).
cpu_ticks() {
    local total=0 pid
    for pid in "$1" $(awk -v p="$1" '{sub(/^.*\) /, ""); if ($2 == p) print FILENAME}' /proc/[0-9]*/stat 2>/dev/null \
            | cut -d/ -f3); do
        [ -r "/proc/$pid/stat" ] || continue
        total=$((total + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat")))
    done
    echo "$total"
}

# wrk output -> "rps p50_ms p99_ms requests errors non2xx"
parse_wrk() {
    awk '
        function ms(v) {
            if (v ~ /us$/) return (v + 0) / 1000
            if (v ~ /ms$/) return v + 0
            if (v ~ /m$/)  return (v + 0) * 60000
            if (v ~ /s$/)  return (v + 0) * 1000
            return v + 0
        }
        /^ +50% / { p50 = ms($2) }
        /^ +99% / { p99 = ms($2) }
        / requests in / { req = $1 }
        /Socket errors:/ { gsub(/,/, ""); err = $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { non2xx = $5 }
        /^Requests\/sec:/ { rps = $2 }
        END { printf "%s %s %s %s %d %d\n", rps, p50, p99, req, err, non2xx }
    ' "$1"
}

declare -A SUM_RPS SUM_P50 SUM_P99 SUM_CPU
RAW="$WORK/raw.txt"
: >"$RAW"
run_wrk() { # $1 = scenario, $2 = proxy, $3 = port, $4 = pid, $5 = seconds, $6 = measured (1/0)
    local out="$WORK/wrk.out" extra=() before after
    [ "$1" = close ] && extra=(-H "Connection: close")
    before="$(cpu_ticks "$4")"
    # In the background, so that an interrupt is handled at once.
    timeout $(($5 + 30)) wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" -d"$5s" --timeout 5s --latency \
        -H "Host: $HOST" "${extra[@]}" "https://127.0.0.1:$3/" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || die "wrk against $2 failed: $(cat "$out")"
    WRK_PID=""
    after="$(cpu_ticks "$4")"
    kill -0 "$4" 2>/dev/null || die "$2 exited during the run"
    [ "$6" = 1 ] || return 0
    local rps p50 p99 req err non2xx cpu_us
    read -r rps p50 p99 req err non2xx < <(parse_wrk "$out")
    { printf '=== %s, %s (port %s)\n' "$1" "$2" "$3"; cat "$out"; } >>"$RAW"
    [ -n "$rps" ] && [ "${req:-0}" -gt 0 ] || die "no result from wrk against $2: $(cat "$out")"
    [ "$err" -eq 0 ] || die "$2, $1: $err socket errors: $(cat "$out")"
    [ "$non2xx" -eq 0 ] || die "$2, $1: $non2xx responses were not 2xx: $(cat "$out")"
    cpu_us="$(awk -v t="$((after - before))" -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.1f", t / hz * 1e6 / n }')"
    log "$(printf '%-10s %-12s %10.0f req/s  p50 %7.2f ms  p99 %7.2f ms  %6s us CPU/req' "$1" "$2" "$rps" "$p50" "$p99" "$cpu_us")"
    local k="$1/$2"
    SUM_RPS[$k]="$(awk -v a="${SUM_RPS[$k]:-0}" -v b="$rps" 'BEGIN { print a + b }')"
    SUM_P50[$k]="$(awk -v a="${SUM_P50[$k]:-0}" -v b="$p50" 'BEGIN { print a + b }')"
    SUM_P99[$k]="$(awk -v a="${SUM_P99[$k]:-0}" -v b="$p99" 'BEGIN { print a + b }')"
    SUM_CPU[$k]="$(awk -v a="${SUM_CPU[$k]:-0}" -v b="$cpu_us" 'BEGIN { print a + b }')"
}

SCENARIOS=(keepalive close)
for scenario in "${SCENARIOS[@]}"; do
    log "scenario $scenario: warm-up ${WARMUP}s each"
    run_wrk "$scenario" portal-proxy "$PORTAL_PORT" "$PORTAL_PID" "$WARMUP" 0
    run_wrk "$scenario" nginx "$NGINX_PORT" "$NGINX_PID" "$WARMUP" 0
    for round in $(seq "$ROUNDS"); do
        # Alternate the order so that a drift in background load hits both.
        if [ $((round % 2)) -eq 1 ]; then
            run_wrk "$scenario" portal-proxy "$PORTAL_PORT" "$PORTAL_PID" "$DURATION" 1
            run_wrk "$scenario" nginx "$NGINX_PORT" "$NGINX_PID" "$DURATION" 1
        else
            run_wrk "$scenario" nginx "$NGINX_PORT" "$NGINX_PID" "$DURATION" 1
            run_wrk "$scenario" portal-proxy "$PORTAL_PORT" "$PORTAL_PID" "$DURATION" 1
        fi
    done
done

# --- report ----------------------------------------------------------------------------
mkdir -p "$TARGET_DIR"
{
    echo "portal-proxy vs nginx load benchmark, $(date -u '+%Y-%m-%dT%H:%M:%SZ')"
    echo "machine: $(nproc) CPUs, $(uname -sr); load average at start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "portal-proxy $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?') (threads: $THREADS)" \
        "| $("$NGINX" -v 2>&1 | sed 's/^nginx version: //') (worker_processes: $THREADS)" \
        "| $(wrk -v 2>&1 | head -n 1 | awk '{print $1, $2}')"
    echo "TLS negotiated with an OpenSSL client: portal-proxy $TLS_PORTAL; nginx $TLS_NGINX"
    echo "upstream: nginx on 127.0.0.1 ($UPSTREAM_WORKERS worker), fixed 1024-byte body, keep-alive from both proxies"
    echo "wrk -t$WRK_THREADS -c$WRK_CONNECTIONS -d${DURATION}s --latency over HTTPS/1.1, Host: $HOST;" \
        "mean of $ROUNDS rounds (order alternated) after a ${WARMUP}s warm-up"
    echo "scenarios: keepalive = persistent connections (both close one after 1000 requests);"
    echo "           close = 'Connection: close', a new TCP + TLS handshake for every request"
    echo "ratio = portal-proxy / nginx: above 1 is better for req/s, below 1 is better for latency and CPU"
    echo
    printf '%-10s %-16s %14s %14s %8s\n' scenario metric portal-proxy nginx ratio
    printf '%-10s %-16s %14s %14s %8s\n' ---------- ---------------- -------------- -------------- --------
    for scenario in "${SCENARIOS[@]}"; do
        for metric in rps p50 p99 cpu; do
            case "$metric" in
                rps) label="requests/s"; a="${SUM_RPS[$scenario/portal-proxy]}"; b="${SUM_RPS[$scenario/nginx]}"; fmt="%14.0f" ;;
                p50) label="p50 latency ms"; a="${SUM_P50[$scenario/portal-proxy]}"; b="${SUM_P50[$scenario/nginx]}"; fmt="%14.2f" ;;
                p99) label="p99 latency ms"; a="${SUM_P99[$scenario/portal-proxy]}"; b="${SUM_P99[$scenario/nginx]}"; fmt="%14.2f" ;;
                cpu) label="CPU us/request"; a="${SUM_CPU[$scenario/portal-proxy]}"; b="${SUM_CPU[$scenario/nginx]}"; fmt="%14.1f" ;;
            esac
            awk -v s="$scenario" -v l="$label" -v a="$a" -v b="$b" -v n="$ROUNDS" -v f="$fmt" \
                'BEGIN { printf "%-10s %-16s " f " " f " %8.2f\n", s, l, a / n, b / n, (b > 0 ? a / b : 0) }'
        done
    done
    echo
    echo "checks: 200 and the upstream's exact body from both (curl), the same forwarded headers;"
    echo "        during the runs no socket errors and no non-2xx/3xx responses (wrk)."
} >"$REPORT.tmp"
{ cat "$REPORT.tmp"; echo; echo "--- raw wrk output"; cat "$RAW"; } >"$REPORT"
rm -f "$REPORT.tmp"
echo
sed -n '1,/^--- raw wrk output/p' "$REPORT" | sed '$d' 
log "report written to $REPORT"
