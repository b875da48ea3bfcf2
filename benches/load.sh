#!/usr/bin/env bash
# Load benchmark: portal-proxy beside bare Pingora (examples/bare_pingora.rs),
# nginx, HAProxy and Caddy, on this machine, in one run; every figure is a
# median over alternating rounds, with its spread. See benches/README.md.
#
#   bash benches/load.sh
#   SCENARIOS="h1-keepalive signed" PROXIES="portal-proxy bare-pingora" DURATION=3 ROUNDS=1 bash benches/load.sh
#
# Every proxy terminates TLS on 127.0.0.1 with the same ECDSA certificate and
# forwards to the same upstream (a separate nginx returning a fixed 1 KiB
# body) over keep-alive connections, setting X-Forwarded-For/-Proto/-Host.
# Everything listens on loopback only; the run is bounded in time (about 9-10
# minutes after the release build with the defaults).
#
# Environment (defaults in brackets):
#   PROXIES [portal-proxy bare-pingora nginx haproxy caddy]
#   SCENARIOS [idle-memory h1-keepalive h1-close h2 terminal signed]; also: mixed
#                        (the public path beside 2 connections fetching a 1 MiB
#                        answer gzip-compressed, in a loop: the light requests'
#                        latency when some work is heavy; portal-proxy only)
#   THREADS [2]          threads / worker processes of every proxy
#   UPSTREAM_WORKERS [1] worker_processes of the upstream nginx
#   WRK_THREADS [2]  WRK_CONNECTIONS [64]      wrk -t / -c
#   H2_CLIENTS [16]  H2_STREAMS [8]            h2load -c / -m (threads: WRK_THREADS)
#   DURATION [5]         seconds of each measured run
#   WARMUP [2]           seconds of the unmeasured run of each proxy and scenario
#   ROUNDS [5]           measured runs per proxy and scenario (order alternates)
#   IDLE_CONNECTIONS [1000]  connections held open by the idle-memory scenario
#   IDLE_PROTOCOL [h1]   h1: each idle connection served one HTTPS/1.1 request; h2: one HTTP/2 stream
#   SKIP_BUILD [0]       1: use the binaries already built
#   KEEP_WORK [0]        1: keep the temp dir (configs, certificates, logs, raw output)
#   PORTAL_EXTRA []      YAML lines added to portal-proxy's config (e.g. 'assertion: { enabled: false }')
#   PORTAL_SERVER []     entries added to its server: section (e.g. ', work_stealing: false')
#   PACE_RPS []          pace every wrk load to about this many requests a second (benches/pace.lua),
#                        so that paths of different costs compare at the same rate
#   BASELINE_BIN []      another portal-proxy binary (an earlier build) measured beside this one,
#                        as proxy portal-baseline, in every scenario and with the same config:
#                        a before/after table of one run (needs portal-proxy in PROXIES)
#   BASELINE_LABEL [baseline]  what the report calls that binary (e.g. a commit)
#   START_SECONDS [15]   how long a proxy may take to answer at start
#   STOP_SECONDS [5]     how long a stopped proxy may take to exit before it is killed
#                        (benches/allocations.sh raises both: valgrind is slow to start and to write)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/release/portal-proxy"
BARE="$TARGET_DIR/release/examples/bare_pingora"
POOLGEN="$TARGET_DIR/release/examples/signed_pool"
REPORT="$TARGET_DIR/load-report.txt"
CLIENT="$ROOT/benches/load_client.py"
SIGNED_LUA="$ROOT/benches/signed.lua"

PROXIES="${PROXIES:-portal-proxy bare-pingora nginx haproxy caddy}"
SCENARIOS="${SCENARIOS:-idle-memory h1-keepalive h1-close h2 terminal signed}"
THREADS="${THREADS:-2}"
UPSTREAM_WORKERS="${UPSTREAM_WORKERS:-1}"
WRK_THREADS="${WRK_THREADS:-2}"
WRK_CONNECTIONS="${WRK_CONNECTIONS:-64}"
H2_CLIENTS="${H2_CLIENTS:-16}"
H2_STREAMS="${H2_STREAMS:-8}"
DURATION="${DURATION:-5}"
WARMUP="${WARMUP:-2}"
ROUNDS="${ROUNDS:-5}"
IDLE_CONNECTIONS="${IDLE_CONNECTIONS:-1000}"
IDLE_PROTOCOL="${IDLE_PROTOCOL:-h1}"
case "$IDLE_PROTOCOL" in h1) IDLE_MODE=idle ;; h2) IDLE_MODE=idle-h2 ;; *) echo "IDLE_PROTOCOL is h1 or h2" >&2; exit 1 ;; esac
SKIP_BUILD="${SKIP_BUILD:-0}"
KEEP_WORK="${KEEP_WORK:-0}"
PORTAL_EXTRA="${PORTAL_EXTRA:-}"
PORTAL_SERVER="${PORTAL_SERVER:-}"
PACE_RPS="${PACE_RPS:-}"
BASELINE_BIN="${BASELINE_BIN:-}"
BASELINE_LABEL="${BASELINE_LABEL:-baseline}"
START_SECONDS="${START_SECONDS:-15}"
STOP_SECONDS="${STOP_SECONDS:-5}"
PACE_LUA="$ROOT/benches/pace.lua"
# Source addresses of the idle connections (127.0.0.1 ... 127.0.0.N), so
# that none holds more than portal-proxy's 256 connections per client.
IDLE_SOURCES=8

log() { printf '[load] %s\n' "$*" >&2; }
die() { printf '[load] FAIL: %s\n' "$*" >&2; exit 1; }

for v in THREADS UPSTREAM_WORKERS WRK_THREADS WRK_CONNECTIONS H2_CLIENTS H2_STREAMS DURATION WARMUP ROUNDS IDLE_CONNECTIONS; do
    case "${!v}" in '' | *[!0-9]*) die "$v=${!v} is not a whole number" ;; esac
    [ "${!v}" -gt 0 ] || die "$v must be at least 1"
done
if [ -n "$PACE_RPS" ]; then
    case "$PACE_RPS" in *[!0-9]*) die "PACE_RPS=$PACE_RPS is not a whole number" ;; esac
    [ "$PACE_RPS" -gt 0 ] || die "PACE_RPS must be at least 1"
    # Each connection waits this long before each request (wrk's delay()).
    export PACE_DELAY_MS=$((WRK_CONNECTIONS * 1000 / PACE_RPS))
fi
[ "$DURATION" -le 280 ] || die "DURATION must be at most 280 s (a peer signature is valid 300 s at most)"
# has WORD LIST: is WORD one of the words of LIST?
has() { case " $2 " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
for p in $PROXIES; do
    has "$p" "portal-proxy bare-pingora nginx haproxy caddy" || die "unknown proxy '$p' in PROXIES"
done
for s in $SCENARIOS; do
    has "$s" "idle-memory h1-keepalive h1-close h2 terminal signed mixed" || die "unknown scenario '$s' in SCENARIOS"
done
if ! has portal-proxy "$PROXIES"; then
    for s in terminal signed mixed; do
        has "$s" "$SCENARIOS" && die "scenario $s needs portal-proxy in PROXIES"
    done
fi
if [ -n "$BASELINE_BIN" ]; then
    has portal-proxy "$PROXIES" || die "BASELINE_BIN needs portal-proxy in PROXIES"
    [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN=$BASELINE_BIN is not an executable"
    # Right after portal-proxy.
    PROXIES="$(printf '%s\n' $PROXIES | sed 's/^portal-proxy$/portal-proxy portal-baseline/' | tr '\n' ' ')"
    PROXIES="${PROXIES% }"
fi
# The scenarios measured in rounds, in a fixed order.
LOAD_SCENARIOS=()
for s in h1-keepalive h1-close h2 terminal signed mixed; do
    has "$s" "$SCENARIOS" && LOAD_SCENARIOS+=("$s")
done
read -r -a PROXY_LIST <<<"$PROXIES"

# --- tools -------------------------------------------------------------------
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if has haproxy "$PROXIES"; then command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || missing+=(haproxy); fi
if has caddy "$PROXIES"; then command -v caddy >/dev/null 2>&1 || missing+=(caddy); fi
if has h2 "$SCENARIOS"; then command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client); fi
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
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
HAPROXY="$(command -v haproxy 2>/dev/null || echo /usr/sbin/haproxy)"

if [ "$SKIP_BUILD" != 1 ]; then
    log "cargo build --release (portal-proxy, examples bare_pingora and signed_pool)"
    (cd "$ROOT" && cargo build --release --quiet --bin portal-proxy --example bare_pingora --example signed_pool)
fi
for b in "$BIN" "$BARE" "$POOLGEN"; do
    [ -x "$b" ] || die "$b is missing (cargo build --release --bin portal-proxy --example bare_pingora --example signed_pool)"
done

# Open files: 1,000 idle connections, HAProxy's maxconn, the load generators.
hard="$(ulimit -Hn)"
want=65536
[ "$hard" = unlimited ] || [ "$hard" -ge "$want" ] || want="$hard"
soft="$(ulimit -Sn)"
if [ "$soft" != unlimited ] && [ "$soft" -lt "$want" ]; then ulimit -Sn "$want"; fi
NOFILE="$(ulimit -Sn)"
[ "$NOFILE" != unlimited ] || NOFILE=1048576
if has idle-memory "$SCENARIOS" && [ "$NOFILE" -lt $((IDLE_CONNECTIONS * 2 + 1024)) ]; then
    die "the open-files limit ($NOFILE) is too low for $IDLE_CONNECTIONS idle connections (lower IDLE_CONNECTIONS)"
fi
# HAProxy refuses to start when maxconn needs more files than it may open.
HAPROXY_MAXCONN=$(( (NOFILE - 200) / 2 ))
[ "$HAPROXY_MAXCONN" -le 4096 ] || HAPROXY_MAXCONN=4096

LOAD_START="$(cut -d' ' -f1-3 /proc/loadavg)"
T_START="$(date +%s)"

# --- temp dir and cleanup ------------------------------------------------------
WORK="$(mktemp -d "${TMPDIR:-/tmp}/portal-proxy-load.XXXXXX")"
CLIENT_PID=""  # the load generator or idle client in progress
HEAVY_PID=""   # the mixed scenario's heavy load in progress
PIDS=()   # every server process started
SIGS=()   # with this signal: nginx and HAProxy stop at once on TERM, Pingora on INT, Caddy on TERM
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i pid
    [ -z "$CLIENT_PID" ] || kill -TERM "$CLIENT_PID" 2>/dev/null || true
    [ -z "$HEAVY_PID" ] || kill -TERM "$HEAVY_PID" 2>/dev/null || true
    for i in "${!PIDS[@]}"; do
        kill -"${SIGS[$i]}" "${PIDS[$i]}" 2>/dev/null || true
    done
    for pid in ${CLIENT_PID:+"$CLIENT_PID"} "${PIDS[@]}"; do
        for _ in $(seq $((STOP_SECONDS * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    # After a failure (not an interrupt), the end of every log.
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 130 ] && [ "$rc" -ne 143 ] && [ -d "$WORK" ]; then
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

declare -A PORT PID
free_port UPSTREAM_PORT
for p in "${PROXY_LIST[@]}"; do free_port "PORT[$p]"; done
free_port NGINX_H2_PORT

# --- identities, CA and wildcard certificate -------------------------------------
"$BIN" keygen "$WORK/identity.pem" >/dev/null
"$BIN" keygen "$WORK/peer.pem" >/dev/null   # the peer Portal of the signed scenario
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
    cat cert.pem key.pem >cert-and-key.pem   # HAProxy's crt
)

# --- upstream: nginx with a fixed 1 KiB body -----------------------------------
BODY="$(printf '%*s' 1024 '' | tr ' ' 'x')"
# The mixed scenario's heavy answer: 1 MiB of words drawn from 2,000, the
# same every run (text that compresses as prose does, about 3:1).
python3 -c '
import random, sys
r = random.Random(1)
words = ["".join(r.choice("etaoinshrdlucmfwypvbgkjqxz") for _ in range(r.randint(2, 9))) for _ in range(2000)]
out, n = [], 0
while n < 1 << 20:
    w = r.choice(words) + (" " if r.random() < 0.9 else ".\n")
    out.append(w); n += len(w)
sys.stdout.write("".join(out)[: 1 << 20])
' >"$WORK/big.txt"
# nginx's workers are not root: let them read it.
chmod o+x "$WORK"
chmod o+r "$WORK/big.txt"
nginx_common() { # $1 = name, $2 = worker_processes
    cat <<EOF
worker_processes $2;
pid $WORK/nginx-$1/nginx.pid;
error_log $WORK/nginx-$1.log warn;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
EOF
}
nginx_temp_paths() { # $1 = name
    local d
    for d in client_body proxy fastcgi uwsgi scgi; do
        printf '    %s_temp_path %s/nginx-%s/%s;\n' "$d" "$WORK" "$1" "$d"
    done
}
mkdir -p "$WORK/nginx-upstream" "$WORK/nginx-proxy"
{
    nginx_common upstream "$UPSTREAM_WORKERS"
    cat <<EOF
http {
    access_log off;
$(nginx_temp_paths upstream)
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {
        listen 127.0.0.1:$UPSTREAM_PORT;
        default_type text/plain;
        # What the proxy forwarded: /headers, /private/headers, /peer/headers.
        location ~ /headers\$ {
            return 200 "host=\$http_host xff=\$http_x_forwarded_for proto=\$http_x_forwarded_proto xfh=\$http_x_forwarded_host conn=\$http_connection cookie=\$http_cookie\n";
        }
        # The heavy answer of the mixed scenario: 1 MiB of words.
        location = /big { alias $WORK/big.txt; }
        location / { return 200 "$BODY"; }
    }
}
EOF
} >"$WORK/nginx-upstream.conf"

# --- nginx as a proxy, configured like portal-proxy ----------------------------------
nginx_server() { # $1 = port, $2 = keepalive_requests
    cat <<EOF
    server {
        listen 127.0.0.1:$1 ssl http2;
        server_name $DOMAIN *.$DOMAIN;
        keepalive_requests $2;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host \$host;
        }
    }
EOF
}
{
    nginx_common proxy "$THREADS"
    cat <<EOF
http {
    access_log off;
$(nginx_temp_paths proxy)
    # portal-proxy serves at most 1000 requests on an HTTP/1 connection
    # (nginx's default too) and keeps 128 idle upstream connections.
    upstream bench {
        server 127.0.0.1:$UPSTREAM_PORT;
        keepalive 64;
        keepalive_requests 10000000;
    }
$(nginx_server "${PORT[nginx]:-1}" 1000)
    # The h2 scenario's port: keepalive_requests also ends an HTTP/2
    # connection after that many streams, and h2load does not reconnect;
    # portal-proxy limits only HTTP/1 connections.
$(nginx_server "$NGINX_H2_PORT" 100000000)
}
EOF
} >"$WORK/nginx-proxy.conf"

# --- HAProxy ---------------------------------------------------------------------
cat >"$WORK/haproxy.cfg" <<EOF
global
    nbthread $THREADS
    maxconn $HAPROXY_MAXCONN
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 300s
    timeout http-keep-alive 60s
    timeout http-request 10s
frontend bench
    bind 127.0.0.1:${PORT[haproxy]:-1} ssl crt $WORK/cert-and-key.pem alpn h2,http/1.1
    http-request set-header X-Forwarded-For %[src]
    http-request set-header X-Forwarded-Proto https
    http-request set-header X-Forwarded-Host %[req.hdr(host)]
    default_backend upstream
backend upstream
    # Idle upstream connections are shared by every client connection (as
    # the other proxies' pools are).
    http-reuse always
    server upstream 127.0.0.1:$UPSTREAM_PORT maxconn 1000
EOF

# --- Caddy -------------------------------------------------------------------------
mkdir -p "$WORK/caddy-data" "$WORK/caddy-config"
cat >"$WORK/Caddyfile" <<EOF
{
    admin off
    auto_https off
    grace_period 1s
    default_sni $HOST
    log {
        level ERROR
    }
    servers {
        protocols h1 h2
    }
}
https://:${PORT[caddy]:-1} {
    bind 127.0.0.1
    tls $WORK/cert.pem $WORK/key.pem
    reverse_proxy 127.0.0.1:$UPSTREAM_PORT
}
EOF

# --- portal-proxy --------------------------------------------------------------------
mkdir -p "$WORK/state/apps/bench"
cat >"$WORK/state/apps/bench/app_meta.json" <<'EOF'
{"port": 80, "paths": {"": {"access": "public"}, "/private/": {"access": "private"}, "/peer/": {"access": "peer"}}}
EOF
TERMINAL_ID="bench-terminal"
printf 'load benchmark terminal secret\n' >"$WORK/state/terminal_jwt_secret"
printf '[{"id": "%s", "name": "load benchmark"}]\n' "$TERMINAL_ID" >"$WORK/state/terminals.json"
printf '[%s]\n' "$("$BIN" id "$WORK/peer.pem" --peer-entry "load peer")" >"$WORK/state/peers.json"
JWT="$(python3 "$CLIENT" jwt "$WORK/state/terminal_jwt_secret" "$TERMINAL_ID")"
cat >"$WORK/portal-proxy.yaml" <<EOF
portal: { key_file: identity.pem, base_domain: bench.test }
state_dir: state
listen: { https: 127.0.0.1:${PORT[portal-proxy]:-1} }
tls: { cert_file: cert.pem, key_file: key.pem }
home_app: bench
core: { upstream: 127.0.0.1:$UPSTREAM_PORT }
upstreams: { bench: 127.0.0.1:$UPSTREAM_PORT }
access_log: { enabled: false }
# The load comes from one address and one peer: the rate limits count every
# request (their cost is measured) but never refuse one. The load's peer
# signs over plain TLS, as a peer that is not portal-proxy does.
limits: { anonymous_requests_per_second: 1000000, peer_requests_per_second: 1000000 }
peering: { transport: ca }
server: { threads: $THREADS, pid_file: portal-proxy.pid, upgrade_sock: upgrade.sock,
          grace_period_seconds: 0, graceful_shutdown_timeout_seconds: 1$PORTAL_SERVER }
$PORTAL_EXTRA
EOF
if [ -n "$BASELINE_BIN" ]; then
    # The same config on its own port, pid file and upgrade socket.
    sed -e "s/127.0.0.1:${PORT[portal-proxy]}/127.0.0.1:${PORT[portal-baseline]}/" \
        -e 's/pid_file: portal-proxy.pid, upgrade_sock: upgrade.sock/pid_file: portal-baseline.pid, upgrade_sock: baseline-upgrade.sock/' \
        "$WORK/portal-proxy.yaml" >"$WORK/portal-baseline.yaml"
    grep -q "127.0.0.1:${PORT[portal-baseline]}" "$WORK/portal-baseline.yaml" \
        && grep -q 'portal-baseline.pid' "$WORK/portal-baseline.yaml" \
        || die "portal-baseline.yaml: the port or pid file was not replaced"
fi

# --- start -------------------------------------------------------------------------
"$NGINX" -t -q -p "$WORK/nginx-upstream/" -e "$WORK/nginx-upstream.log" -c "$WORK/nginx-upstream.conf" \
    || die "nginx -t refused nginx-upstream.conf"
"$NGINX" -p "$WORK/nginx-upstream/" -e "$WORK/nginx-upstream.log" -c "$WORK/nginx-upstream.conf" \
    -g 'daemon off;' >"$WORK/nginx-upstream-stderr.log" 2>&1 &
UPSTREAM_PID=$!; PIDS+=("$UPSTREAM_PID"); SIGS+=(TERM)

start_proxy() { # $1 = proxy
    case "$1" in
        portal-proxy)
            "$BIN" -t -c "$WORK/portal-proxy.yaml" >"$WORK/portal-proxy-check.log" 2>&1 \
                || die "portal-proxy -t refused the config: $(cat "$WORK/portal-proxy-check.log")"
            # wrk sends the URL's IP address as SNI, which rustls ignores with a
            # warning per handshake: keep those lines out of the measurement.
            RUST_LOG="warn,rustls=error" "$BIN" -c "$WORK/portal-proxy.yaml" >"$WORK/portal-proxy.log" 2>&1 &
            SIGS+=(INT) ;;
        portal-baseline)
            "$BASELINE_BIN" -t -c "$WORK/portal-baseline.yaml" >"$WORK/portal-baseline-check.log" 2>&1 \
                || die "portal-baseline -t refused the config: $(cat "$WORK/portal-baseline-check.log")"
            RUST_LOG="warn,rustls=error" "$BASELINE_BIN" -c "$WORK/portal-baseline.yaml" >"$WORK/portal-baseline.log" 2>&1 &
            SIGS+=(INT) ;;
        bare-pingora)
            "$BARE" --listen "127.0.0.1:${PORT[$1]}" --upstream "127.0.0.1:$UPSTREAM_PORT" \
                --cert "$WORK/cert.pem" --key "$WORK/key.pem" --threads "$THREADS" >"$WORK/bare-pingora.log" 2>&1 &
            SIGS+=(INT) ;;
        nginx)
            "$NGINX" -t -q -p "$WORK/nginx-proxy/" -e "$WORK/nginx-proxy.log" -c "$WORK/nginx-proxy.conf" \
                || die "nginx -t refused nginx-proxy.conf"
            "$NGINX" -p "$WORK/nginx-proxy/" -e "$WORK/nginx-proxy.log" -c "$WORK/nginx-proxy.conf" \
                -g 'daemon off;' >"$WORK/nginx-proxy-stderr.log" 2>&1 &
            SIGS+=(TERM) ;;
        haproxy)
            "$HAPROXY" -c -q -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 \
                || die "haproxy -c refused haproxy.cfg: $(cat "$WORK/haproxy.log")"
            "$HAPROXY" -db -f "$WORK/haproxy.cfg" >>"$WORK/haproxy.log" 2>&1 &
            SIGS+=(TERM) ;;
        caddy)
            caddy fmt --overwrite "$WORK/Caddyfile" >"$WORK/caddy.log" 2>&1 || die "caddy fmt: $(cat "$WORK/caddy.log")"
            XDG_DATA_HOME="$WORK/caddy-data" XDG_CONFIG_HOME="$WORK/caddy-config" GOMAXPROCS="$THREADS" \
                caddy run --adapter caddyfile --config "$WORK/Caddyfile" >"$WORK/caddy.log" 2>&1 &
            SIGS+=(TERM) ;;
    esac
    PID[$1]=$!
    PIDS+=("${PID[$1]}")
}
for p in "${PROXY_LIST[@]}"; do start_proxy "$p"; done

# get URL [curl args...]: prints the status, the body goes to $WORK/body.
get() {
    local url="$1"; shift
    curl -sk --max-time 5 -H "Host: $HOST" "$@" -o "$WORK/body" -w '%{http_code}' "$url"
}
wait_ready() { # $1 = name, $2 = pid, $3 = url
    for _ in $(seq $((START_SECONDS * 10))); do
        kill -0 "$2" 2>/dev/null || die "$1 exited at start"
        if [ "$(get "$3" 2>/dev/null || true)" = 200 ]; then return 0; fi
        sleep 0.1
    done
    die "$1 does not answer 200 on $3 within $START_SECONDS s"
}
wait_ready upstream "$UPSTREAM_PID" "http://127.0.0.1:$UPSTREAM_PORT/"
for p in "${PROXY_LIST[@]}"; do wait_ready "$p" "${PID[$p]}" "https://127.0.0.1:${PORT[$p]}/"; done

# --- checks before measuring -----------------------------------------------------------
REF="${PROXY_LIST[0]}"
for p in "${PROXY_LIST[@]}"; do
    port="${PORT[$p]}"
    for http in --http1.1 --http2; do
        [ "$(get "https://127.0.0.1:$port/" "$http")" = 200 ] || die "$p ($http): not 200"
        cmp -s "$WORK/body" <(printf '%s' "$BODY") || die "$p ($http): not the upstream's 1 KiB body"
    done
    version="$(curl -sk --max-time 5 --http2 -H "Host: $HOST" -o /dev/null -w '%{http_version}' "https://127.0.0.1:$port/")"
    [ "$version" = 2 ] || die "$p does not negotiate HTTP/2 (ALPN): HTTP/$version"
done
if has nginx "$PROXIES"; then
    [ "$(get "https://127.0.0.1:$NGINX_H2_PORT/" --http2)" = 200 ] || die "nginx's HTTP/2 port: not 200"
    cmp -s "$WORK/body" <(printf '%s' "$BODY") || die "nginx's HTTP/2 port: not the upstream's 1 KiB body"
fi
# The same forwarded headers from every proxy, over HTTP/1.1 with and without
# the client's "Connection: close" (a hop-by-hop header no proxy may pass on)
# and over HTTP/2.
for variant in keep-alive close h2; do
    args=(-H "Connection: $variant")
    [ "$variant" = h2 ] && args=(--http2)
    ref_headers=""
    for p in "${PROXY_LIST[@]}"; do
        get "https://127.0.0.1:${PORT[$p]}/headers" "${args[@]}" >/dev/null
        headers="$(cat "$WORK/body")"
        log "$(printf '%-8s %-13s the upstream receives: %s' "$variant" "$p" "$headers")"
        [ -n "$ref_headers" ] || ref_headers="$headers"
        [ "$headers" = "$ref_headers" ] || die "$p forwards other headers than $REF ($variant): '$headers' vs '$ref_headers'"
    done
done
# The same TLS version from every proxy, with an OpenSSL client (the cipher
# is logged and reported: each server picks its own).
declare -A TLS
tls_ref=""
for p in "${PROXY_LIST[@]}"; do
    TLS[$p]="$(openssl s_client -connect "127.0.0.1:${PORT[$p]}" -servername "$HOST" </dev/null 2>/dev/null \
        | awk '/^New, /{print $2, $5}' | head -n 1 || true)"
    [ -n "${TLS[$p]}" ] || die "$p: no TLS session with openssl s_client"
    log "TLS with an OpenSSL client: $p ${TLS[$p]}"
    [ -n "$tls_ref" ] || tls_ref="${TLS[$p]%% *}"
    [ "${TLS[$p]%% *}" = "$tls_ref" ] || die "$p negotiates ${TLS[$p]%% *}, $REF $tls_ref"
done
if has portal-proxy "$PROXIES"; then
    pp="https://127.0.0.1:${PORT[portal-proxy]}"
    # The terminal path: the cookie opens the private path (and is not passed on).
    [ "$(get "$pp/private/")" = 401 ] || die "portal-proxy: /private/ without the terminal's cookie is not 401"
    [ "$(get "$pp/private/" -H "Cookie: authorization=$JWT")" = 200 ] \
        || die "portal-proxy: /private/ with the terminal's cookie is not 200: $(cat "$WORK/body")"
    cmp -s "$WORK/body" <(printf '%s' "$BODY") || die "portal-proxy: /private/ is not the upstream's body"
    get "$pp/private/headers" -H "Cookie: authorization=$JWT" >/dev/null
    case "$(cat "$WORK/body")" in *"cookie= "* | *"cookie=") ;; *) die "the terminal's cookie reaches the app: $(cat "$WORK/body")" ;; esac
    # The signed path: a pooled request is served, the same one again refused.
    [ "$(get "$pp/peer/")" = 401 ] || die "portal-proxy: /peer/ without a signature is not 401"
    "$POOLGEN" --key "$WORK/peer.pem" --host "$HOST" --path /peer/ --count 1 --validity 30 --out "$WORK/check-pool.http"
    read -r first second < <(python3 "$CLIENT" replay "${PORT[portal-proxy]}" "$HOST" "$WORK/check-pool.http")
    log "signed path: a pooled request gets $first, the same request again $second"
    [ "$first" = 200 ] || die "a pooled signed request gets $first, not 200"
    [ "$second" = 401 ] || die "a replayed signed request gets $second, not 401"
fi

# --- measurement helpers ------------------------------------------------------------------
CLK_TCK="$(getconf CLK_TCK)"
# The processes of a proxy: its main process and its children (nginx's workers).
tree_pids() {
    echo "$1"
    awk -v p="$1" '{sub(/^.*\) /, ""); if ($2 == p) print FILENAME}' /proc/[0-9]*/stat 2>/dev/null | cut -d/ -f3
}
# CPU ticks (user + system, all threads) of a proxy's processes.
cpu_ticks() {
    local total=0 pid t
    for pid in $(tree_pids "$1"); do
        t="$(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$pid/stat" 2>/dev/null)" || continue
        total=$((total + ${t:-0}))
    done
    echo "$total"
}
# kB of a field of /proc/PID/status (VmRSS) or smaps_rollup (Pss), summed over a proxy's processes.
mem_kb() { # $1 = pid, $2 = VmRSS | Pss
    local total=0 pid file v
    for pid in $(tree_pids "$1"); do
        file="/proc/$pid/status"
        [ "$2" = Pss ] && file="/proc/$pid/smaps_rollup"
        v="$(awk -v k="$2:" '$1 == k {print $2}' "$file" 2>/dev/null)" || continue
        total=$((total + ${v:-0}))
    done
    echo "$total"
}
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

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
# h2load output and its --log-file -> the same six fields (errors: failed +
# errored + timeout; non2xx: 3xx + 4xx + 5xx).
parse_h2load() { # $1 = output, $2 = log file
    local pct
    pct="$(cut -f3 "$2" | sort -n | awk '{ a[NR] = $1 } END {
        if (NR == 0) { print "0 0"; exit }
        i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
        i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
        printf "%.3f %.3f\n", a[i50] / 1000, a[i99] / 1000 }')"
    awk -v pct="$pct" '
        /^finished in / { rps = $4 }
        /^requests: / { gsub(/,/, ""); ok = $8; err = $10 + $12 + $14 }
        /^status codes: / { gsub(/,/, ""); non2xx = $5 + $7 + $9 }
        END { split(pct, p, " "); printf "%s %s %s %s %d %d\n", rps, p[1], p[2], ok, err, non2xx }
    ' "$1"
}

# --- the signed scenario's pools ------------------------------------------------------------
# portal-proxy keeps every nonce until its signature's expiry + 5 s, at most
# 50,000 a peer (replay_cache_per_peer's default): a run must use fewer, and
# the next run waits until the previous pool's nonces are forgotten.
SIGNED_NONCES=45000
SIGNED_RATE=0        # highest signed requests/s seen so far
declare -A SIGNED_FORGET_AT   # per portal-proxy binary: when it has forgotten its last pool's nonces
POOL="$WORK/pool.http"
# signed_prepare SECONDS PROXY: writes a fresh pool; sets RUN_SECONDS.
signed_prepare() {
    local est="$SIGNED_RATE" count now validity forget="${SIGNED_FORGET_AT[$2]:-0}"
    if [ "$est" -eq 0 ]; then
        est=20000   # no signed run yet: the warm-up's estimate (it is only WARMUP seconds)
    fi
    est=$((est * 13 / 10))
    RUN_SECONDS="$1"
    [ $((est * RUN_SECONDS)) -le "$SIGNED_NONCES" ] || RUN_SECONDS=$((SIGNED_NONCES / est))
    [ "$RUN_SECONDS" -ge 1 ] || RUN_SECONDS=1
    count=$((est * RUN_SECONDS * 2 + 2000))
    now="$(date +%s)"
    if [ "$now" -lt "$forget" ]; then
        log "signed: waiting $((forget - now)) s until $2 has forgotten the previous pool's nonces"
        sleep $((forget - now))
    fi
    validity=$((RUN_SECONDS + 20))
    "$POOLGEN" --key "$WORK/peer.pem" --host "$HOST" --path /peer/ --count "$count" \
        --validity "$validity" --out "$POOL"
    SIGNED_FORGET_AT[$2]=$(($(date +%s) + validity + 6))
}

# --- one run -----------------------------------------------------------------------------------
RESULTS="$WORK/results.tsv"
RAW="$WORK/raw.txt"
: >"$RESULTS"
: >"$RAW"
# run_load SCENARIO PROXY SECONDS ROUND (ROUND 0: warm-up, not recorded)
run_load() {
    local scenario="$1" proxy="$2" secs="$3" round="$4"
    local port="${PORT[$proxy]}" pid="${PID[$proxy]}" out="$WORK/run.out"
    local -a cmd
    # nginx's HTTP/2 listener has no limit of requests per connection.
    [ "$scenario" != h2 ] || [ "$proxy" != nginx ] || port="$NGINX_H2_PORT"
    local url="https://127.0.0.1:$port/"
    RUN_SECONDS="$secs"
    local wrk=(wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" --timeout 5s --latency -H "Host: $HOST")
    local paced=()
    [ -z "$PACE_RPS" ] || paced=(-s "$PACE_LUA")
    case "$scenario" in
        h1-keepalive) cmd=("${wrk[@]}" "${paced[@]}" -d"${secs}s" "$url") ;;
        h1-close) cmd=("${wrk[@]}" "${paced[@]}" -d"${secs}s" -H "Connection: close" "$url") ;;
        terminal) cmd=("${wrk[@]}" "${paced[@]}" -d"${secs}s" -H "Cookie: authorization=$JWT" "${url}private/") ;;
        mixed)
            cmd=("${wrk[@]}" -d"${secs}s" "$url")
            # The heavy load, for as long as the light one runs.
            wrk -t1 -c2 -d"$((secs + 1))s" --timeout 5s -H "Host: $HOST" -H "Accept-Encoding: gzip" \
                "${url}big" >"$WORK/heavy.out" 2>&1 &
            HEAVY_PID=$! ;;
        signed)
            signed_prepare "$secs" "$proxy"
            cmd=("${wrk[@]}" -d"${RUN_SECONDS}s" -s "$SIGNED_LUA" "${url}peer/" -- "$POOL" "$WRK_THREADS") ;;
        h2)
            rm -f "$WORK/h2.log"
            cmd=(h2load -c"$H2_CLIENTS" -m"$H2_STREAMS" -t"$WRK_THREADS" -D "$secs" --log-file="$WORK/h2.log"
                -H ":authority: $HOST" "$url") ;;
    esac
    local before after
    before="$(cpu_ticks "$pid")"
    # In the background, so that an interrupt is handled at once.
    timeout $((RUN_SECONDS + 60)) "${cmd[@]}" >"$out" 2>&1 &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || die "$scenario against $proxy failed: $(cat "$out")"
    CLIENT_PID=""
    local heavy=""
    if [ -n "$HEAVY_PID" ]; then
        wait "$HEAVY_PID" || die "the heavy load of $scenario failed: $(cat "$WORK/heavy.out")"
        HEAVY_PID=""
        heavy="$(awk '/requests in/ { print $1 }' "$WORK/heavy.out")"
        [ "${heavy:-0}" -gt 0 ] || die "the heavy load of $scenario made no request: $(cat "$WORK/heavy.out")"
        ! grep -q 'Non-2xx' "$WORK/heavy.out" || die "the heavy load of $scenario was refused: $(cat "$WORK/heavy.out")"
        heavy="  (beside $heavy compressed 1 MiB answers)"
    fi
    after="$(cpu_ticks "$pid")"
    kill -0 "$pid" 2>/dev/null || die "$proxy exited during the run"
    { printf '=== round %s, %s, %s (port %s): %s\n' "$round" "$scenario" "$proxy" "$port" "${cmd[*]}"; cat "$out"; } >>"$RAW"
    local rps p50 p99 req err non2xx cpu_us rss
    if [ "$scenario" = h2 ]; then
        read -r rps p50 p99 req err non2xx < <(parse_h2load "$out" "$WORK/h2.log")
    else
        read -r rps p50 p99 req err non2xx < <(parse_wrk "$out")
    fi
    if [ -z "$rps" ] || [ "${req:-0}" -le 0 ]; then die "no result from $scenario against $proxy: $(cat "$out")"; fi
    [ "$err" -eq 0 ] || die "$proxy, $scenario: $err socket errors / failed requests: $(cat "$out")"
    [ "$non2xx" -eq 0 ] || die "$proxy, $scenario: $non2xx responses were not 2xx: $(cat "$out")"
    if [ "$scenario" = signed ]; then
        ! grep -q 'pool exhausted' "$out" \
            || die "the signed pool ran out (the rate rose above twice the estimate): $(cat "$out")"
        local r="${rps%.*}"
        [ "${r:-0}" -le "$SIGNED_RATE" ] || SIGNED_RATE="${r:-0}"
    fi
    [ "$round" -gt 0 ] || return 0
    cpu_us="$(awk -v t="$((after - before))" -v hz="$CLK_TCK" -v n="$req" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')"
    rss="$(mib "$(mem_kb "$pid" VmRSS)")"
    log "$(printf 'round %s %-12s %-12s %9.0f req/s %7s us CPU/req  p50 %7.2f ms  p99 %7.2f ms  RSS %6s MiB%s' \
        "$round" "$scenario" "$proxy" "$rps" "$cpu_us" "$p50" "$p99" "$rss" "$heavy")"
    printf '%s %s %s %s %s %s %s %s %s %s\n' "$round" "$scenario" "$proxy" "$RUN_SECONDS" "$req" \
        "$rps" "$cpu_us" "$p50" "$p99" "$rss" >>"$RESULTS"
}

# --- idle memory ---------------------------------------------------------------------------------
IDLE="$WORK/idle.tsv"
: >"$IDLE"
measure_idle() { # $1 = proxy
    local proxy="$1" port="${PORT[$1]}" pid="${PID[$1]}" out="$WORK/idle-client.out"
    local rss0 pss0 rss1 open
    # nginx's HTTP/2 listener is its own.
    [ "$IDLE_PROTOCOL" != h2 ] || [ "$proxy" != nginx ] || port="$NGINX_H2_PORT"
    rss0="$(mem_kb "$pid" VmRSS)"
    pss0="$(mem_kb "$pid" Pss)"
    python3 "$CLIENT" "$IDLE_MODE" "$port" "$HOST" "$IDLE_CONNECTIONS" "$IDLE_SOURCES" >"$out" 2>&1 &
    CLIENT_PID=$!
    for _ in $(seq 1200); do
        grep -q '^ready' "$out" && break
        kill -0 "$CLIENT_PID" 2>/dev/null || die "the idle client failed against $proxy: $(cat "$out")"
        sleep 0.1
    done
    grep -q '^ready' "$out" || die "the idle client did not open $IDLE_CONNECTIONS connections to $proxy within 120 s"
    sleep 1
    open="$(ss -Htn state established "( sport = :$port )" | wc -l)"
    rss1="$(mem_kb "$pid" VmRSS)"
    kill -TERM "$CLIENT_PID" 2>/dev/null || true
    wait "$CLIENT_PID" 2>/dev/null || true
    CLIENT_PID=""
    [ "$open" -ge "$IDLE_CONNECTIONS" ] || die "$proxy holds only $open of the $IDLE_CONNECTIONS idle connections"
    kill -0 "$pid" 2>/dev/null || die "$proxy exited during the idle-memory scenario"
    log "$(printf 'idle-memory %-12s RSS %6s MiB (PSS %s MiB); with %s idle TLS connections (%s) %6s MiB (+%s)' \
        "$proxy" "$(mib "$rss0")" "$(mib "$pss0")" "$open" "$IDLE_PROTOCOL" "$(mib "$rss1")" "$(mib $((rss1 - rss0)))")"
    printf '%s %s %s %s %s\n' "$proxy" "$(mib "$rss0")" "$(mib "$pss0")" "$(mib "$rss1")" "$open" >>"$IDLE"
    # Let the proxy see the connections go before the next one.
    for _ in $(seq 100); do
        [ "$(ss -Htn "( sport = :$port )" | wc -l)" -lt 10 ] && break
        sleep 0.1
    done
}

runs=0
for s in "${LOAD_SCENARIOS[@]}"; do
    case "$s" in terminal | signed | mixed) runs=$((runs + 1)) ;; *) runs=$((runs + ${#PROXY_LIST[@]})) ;; esac
done
log "$runs runs per round, $ROUNDS rounds of ${DURATION}s: about $(( (runs * ROUNDS * (DURATION + 2) + runs * (WARMUP + 2)) / 60 + 1 )) minutes"

# stop_proxy PROXY: stops it (its own signal, then KILL after 5 s) and forgets its pid.
stop_proxy() {
    local pid="${PID[$1]}" i
    for i in "${!PIDS[@]}"; do
        [ "${PIDS[$i]}" = "$pid" ] || continue
        kill -"${SIGS[$i]}" "$pid" 2>/dev/null || true
        for _ in $(seq $((STOP_SECONDS * 10))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        unset 'PIDS[i]' 'SIGS[i]'
    done
}

if has idle-memory "$SCENARIOS"; then
    for p in "${PROXY_LIST[@]}"; do measure_idle "$p"; done
    # Memory the idle connections took is not all given back: restart every
    # proxy so that the RSS after the load runs does not carry it.
    if [ "${#LOAD_SCENARIOS[@]}" -gt 0 ]; then
        log "restarting the proxies after the idle-memory scenario"
        for p in "${PROXY_LIST[@]}"; do
            stop_proxy "$p"
            start_proxy "$p"
            wait_ready "$p" "${PID[$p]}" "https://127.0.0.1:${PORT[$p]}/"
        done
    fi
fi
VERIFY_US=""
SIGN_US=""
if has signed "$SCENARIOS"; then
    read -r VERIFY_US SIGN_US < <("$POOLGEN" --verify-bench)
    log "on this machine: one ed25519 verify_strict $VERIFY_US us, one ed25519 signature $SIGN_US us"
fi

# proxies_for SCENARIO ROUND: the proxies of a scenario, reversed in even rounds.
proxies_for() {
    local list=("${PROXY_LIST[@]}") i
    case "$1" in terminal | signed | mixed) list=(portal-proxy ${BASELINE_BIN:+portal-baseline}) ;; esac
    if [ $(($2 % 2)) -eq 0 ]; then
        for ((i = ${#list[@]} - 1; i >= 0; i--)); do echo "${list[$i]}"; done
    else
        printf '%s\n' "${list[@]}"
    fi
}
if [ "${#LOAD_SCENARIOS[@]}" -gt 0 ]; then
    log "warm-up: ${WARMUP}s of each scenario and proxy"
    for s in "${LOAD_SCENARIOS[@]}"; do
        for p in $(proxies_for "$s" 1); do run_load "$s" "$p" "$WARMUP" 0; done
    done
    for round in $(seq "$ROUNDS"); do
        log "round $round of $ROUNDS"
        for s in "${LOAD_SCENARIOS[@]}"; do
            for p in $(proxies_for "$s" "$round"); do run_load "$s" "$p" "$DURATION" "$round"; done
        done
    done
fi

# --- report ----------------------------------------------------------------------------------------
versions=()
for p in "${PROXY_LIST[@]}"; do
    case "$p" in
        portal-proxy) versions+=("portal-proxy $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')") ;;
        portal-baseline) versions+=("portal-baseline $BASELINE_LABEL ($BASELINE_BIN)") ;;
        bare-pingora) versions+=("bare-pingora (pingora $(awk '/^name = "pingora"$/ {getline; print $3}' "$ROOT/Cargo.lock" | tr -d '"'))") ;;
        nginx) versions+=("$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')") ;;
        haproxy) versions+=("haproxy $("$HAPROXY" -v 2>/dev/null | awk 'NR == 1 {print $3}')") ;;
        caddy) versions+=("caddy $(caddy version 2>/dev/null | awk '{print $1}')") ;;
    esac
done
mkdir -p "$TARGET_DIR"
{
    echo "portal-proxy load benchmark, $(date -u '+%Y-%m-%dT%H:%M:%SZ'), $(( ($(date +%s) - T_START) / 60 )) min"
    echo "machine: $(nproc) CPUs, $(uname -sr); load average at start $LOAD_START, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    joined="$(printf '%s, ' "${versions[@]}")"
    echo "proxies: ${joined%, }; $THREADS threads / worker processes each"
    tls_line="$(for p in "${PROXY_LIST[@]}"; do printf '%s %s; ' "$p" "${TLS[$p]}"; done)"
    echo "TLS with an OpenSSL client: ${tls_line%; }"
    echo "upstream: nginx on 127.0.0.1 ($UPSTREAM_WORKERS worker), fixed 1024-byte body, keep-alive from every proxy"
    echo "load: wrk -t$WRK_THREADS -c$WRK_CONNECTIONS --latency (HTTP/1.1), h2load -t$WRK_THREADS -c$H2_CLIENTS -m$H2_STREAMS (HTTP/2); Host: $HOST"
    echo "$ROUNDS rounds of ${DURATION}s runs after a ${WARMUP}s warm-up of each; proxy order reversed every other round"
    echo "CPU us/request = the proxy's CPU time (user + system, all its processes, /proc) during the run / requests answered"
    echo "RSS = VmRSS of all the proxy's processes after the run"
    echo
    PROXIES="$PROXIES" SCENARIOS="${LOAD_SCENARIOS[*]}" ROUNDS="$ROUNDS" VERIFY_US="$VERIFY_US" SIGN_US="$SIGN_US" \
        IDLE_CONNECTIONS="$IDLE_CONNECTIONS" IDLE_PROTOCOL="$IDLE_PROTOCOL" python3 "$ROOT/benches/load_report.py" "$RESULTS" "$IDLE"
    echo
    echo "checks: 200 and the upstream's exact body from every proxy (HTTP/1.1 and HTTP/2), the same"
    echo "        forwarded headers, the same TLS version; terminal and signed paths refuse without"
    echo "        credentials, a replayed signed request is refused; during the runs no socket errors"
    echo "        and no non-2xx responses."
} >"$REPORT.tmp"
{
    cat "$REPORT.tmp"
    echo
    echo "--- measurements (round scenario proxy seconds requests rps cpu_us p50_ms p99_ms rss_mib)"
    cat "$RESULTS"
    echo "--- idle memory (proxy rss_mib pss_mib rss_with_connections_mib connections)"
    cat "$IDLE"
    echo "--- raw load generator output"
    cat "$RAW"
} >"$REPORT"
rm -f "$REPORT.tmp"
echo
sed -n '1,/^--- measurements/p' "$REPORT" | sed '$d'
log "report written to $REPORT"
