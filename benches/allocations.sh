#!/usr/bin/env bash
# Heap allocations per request of the whole binary (issue 31): Pingora,
# rustls, tokio and this project's code together, on the public, terminal
# and signed paths, and which of them this project's code makes.
#
#   bash benches/allocations.sh
#   SCENARIOS=signed SKIP_BUILD=1 bash benches/allocations.sh
#
# portal-proxy is built with the system's malloc (`--no-default-features`:
# valgrind sees malloc, not mimalloc) and line tables, without LTO (heap
# allocations do not depend on it), in target/dhat. benches/load.sh then runs
# it under valgrind's dhat as its baseline binary, one scenario at a time,
# with few connections (so that a connection's handshake is spread over many
# requests), and dhat_report.py divides what the serving made by the
# requests served. Allocation counts, unlike times, barely move from run to
# run. The report goes to target/allocations/report.txt.
# valgrind runs the proxy about 50 times slower: a scenario takes a minute
# or two, and counts do not depend on what else the machine is doing.
#
# Environment (defaults in brackets):
#   SCENARIOS [h1-keepalive terminal signed]   load.sh scenarios, each under its own dhat run
#   DURATION [6]         seconds of the measured run (under valgrind: a few thousand requests)
#   CONNECTIONS [4]      wrk connections
#   SKIP_BUILD [0]       1: use target/dhat/release/portal-proxy and target/release as built
#   TOP [12]             call sites listed per scenario
#   DHAT_BIN [target/dhat/release/portal-proxy]  the binary measured (built as above; e.g. an
#                        earlier commit's, copied aside, for a before/after)
#   OUT [target/allocations]  where the profiles and the report go (each scenario's folder replaced)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SCENARIOS="${SCENARIOS:-h1-keepalive terminal signed}"
DURATION="${DURATION:-6}"
CONNECTIONS="${CONNECTIONS:-4}"
SKIP_BUILD="${SKIP_BUILD:-0}"
TOP="${TOP:-12}"
OUT="${OUT:-$ROOT/target/allocations}"
DHAT_BIN="${DHAT_BIN:-$ROOT/target/dhat/release/portal-proxy}"

log() { printf '[allocations] %s\n' "$*" >&2; }
die() { printf '[allocations] FAIL: %s\n' "$*" >&2; exit 1; }

command -v valgrind >/dev/null || die "valgrind is missing (Debian package valgrind)"
if [ "$SKIP_BUILD" != 1 ] && [ "$DHAT_BIN" = "$ROOT/target/dhat/release/portal-proxy" ]; then
    log "cargo build: portal-proxy with the system's malloc and line tables (target/dhat)"
    (cd "$ROOT" && CARGO_PROFILE_RELEASE_DEBUG=line-tables-only CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        cargo build --release --quiet --no-default-features --bin portal-proxy --target-dir target/dhat)
    log "cargo build --release: load.sh's own binaries"
    (cd "$ROOT" && cargo build --release --quiet --bin portal-proxy --example bare_pingora --example signed_pool)
fi
[ -x "$DHAT_BIN" ] || die "$DHAT_BIN is missing (run without SKIP_BUILD=1)"

mkdir -p "$OUT"
# The baseline binary: the config check runs as it is, the proxy under dhat.
cat >"$OUT/under-dhat.sh" <<WRAP
#!/usr/bin/env bash
for a in "\$@"; do [ "\$a" != -t ] || exec "$DHAT_BIN" "\$@"; done
exec valgrind --tool=dhat --num-callers=60 --read-inline-info=yes --dhat-out-file="\$DHAT_OUT" "$DHAT_BIN" "\$@"
WRAP
chmod +x "$OUT/under-dhat.sh"

: >"$OUT/report.txt"
for s in $SCENARIOS; do
    log "scenario $s: portal-proxy under dhat (a minute or two)"
    rm -rf "${OUT:?}/$s"   # this script's own: a scenario's profile and load.sh's files
    mkdir -p "$OUT/$s"
    DHAT_OUT="$OUT/$s/dhat.json" TMPDIR="$OUT/$s" KEEP_WORK=1 SKIP_BUILD=1 \
        PROXIES=portal-proxy SCENARIOS="$s" ROUNDS=1 WARMUP=1 DURATION="$DURATION" \
        WRK_CONNECTIONS="$CONNECTIONS" START_SECONDS=120 STOP_SECONDS=300 \
        BASELINE_BIN="$OUT/under-dhat.sh" BASELINE_LABEL=dhat \
        bash "$ROOT/benches/load.sh" >"$OUT/$s/load.log" 2>&1 \
        || die "load.sh failed on $s: $(tail -20 "$OUT/$s/load.log")"
    work="$(find "$OUT/$s" -maxdepth 1 -type d -name 'portal-proxy-load.*' | head -1)"
    [ -s "$OUT/$s/dhat.json" ] || die "dhat wrote no profile for $s (see $work/portal-baseline.log)"
    python3 "$ROOT/benches/dhat_report.py" --scenario "$s" --raw "$work/raw.txt" --top "$TOP" \
        "$OUT/$s/dhat.json" | tee -a "$OUT/report.txt"
done
log "report: $OUT/report.txt"
