#!/usr/bin/env bash
# Checks systemd/portal-proxy.service without installing it:
#   - `systemd-analyze verify` passes, with no warning about the unit;
#   - `systemd-analyze security --offline=yes` rates its exposure at 2.0 or
#     lower (MAX_EXPOSURE);
#   - PIDFile= agrees with server.pid_file of conf/portal-proxy.yaml, and
#     server.upgrade_sock lies in the RuntimeDirectory=.
# verify needs every Exec*= binary to exist, so the unit is checked from a
# temporary copy in which /usr/local/bin/portal-proxy is replaced by the
# binary given (CI: target/debug/portal-proxy). Without an argument a stub
# executable stands in. User=portal-proxy need not exist: verify does not
# look users up.
#
# Usage: systemd/check.sh <path to portal-proxy binary>
set -euo pipefail

MAX_EXPOSURE=2.0
here="$(cd "$(dirname "$0")" && pwd)"
unit="$here/portal-proxy.service"
conf="$here/../conf/portal-proxy.yaml"
installed_bin=/usr/local/bin/portal-proxy

fail() {
    echo "systemd/check.sh: FAIL: $*" >&2
    exit 1
}

command -v systemd-analyze >/dev/null 2>&1 ||
    fail "systemd-analyze not found (Debian/Ubuntu: apt-get install systemd)"
version="$(systemd-analyze --version | awk 'NR == 1 { print $2 }')"
# --offline and --threshold of `security` came with systemd 250.
[[ "$version" =~ ^[0-9]+$ && "$version" -ge 250 ]] ||
    fail "systemd-analyze $version is too old, 250 or newer is needed (security --offline, --threshold)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

if [[ $# -ge 1 ]]; then
    [[ -f "$1" && -x "$1" ]] || fail "$1 is not an executable file"
    bin="$(realpath "$1")"
else
    bin="$tmp/portal-proxy"
    printf '#!/bin/sh\nexit 0\n' >"$bin"
    chmod 0755 "$bin"
    echo "no binary given, checking with a stub executable"
fi
[[ "$bin" != *"|"* ]] || fail "the binary's path must not contain '|'"

# The copy keeps the unit's name: it is what verify and security report.
grep -q "$installed_bin" "$unit" || fail "$unit does not run $installed_bin"
sed "s|$installed_bin|$bin|g" "$unit" >"$tmp/portal-proxy.service"

echo "== systemd-analyze verify (systemd $version)"
status=0
out="$(cd "$tmp" && systemd-analyze verify ./portal-proxy.service 2>&1)" || status=$?
[[ -z "$out" ]] || printf '%s\n' "$out"
[[ $status -eq 0 ]] || fail "systemd-analyze verify exited with $status"
# verify exits 0 on unknown keys and bad values; any line about our unit
# is a failure (lines about the host's own units are not ours to fix).
if grep -q 'portal-proxy' <<<"$out"; then
    fail "systemd-analyze verify warned about the unit"
fi
echo "ok"

echo "== systemd-analyze security --offline=yes"
status=0
threshold="$(awk -v m="$MAX_EXPOSURE" 'BEGIN { printf "%d", m * 10 }')"
out="$(cd "$tmp" && systemd-analyze security --offline=yes --threshold="$threshold" \
    --no-pager ./portal-proxy.service 2>&1)" || status=$?
# The settings that still add to the exposure, then the overall level.
grep -E '^✗|Overall exposure' <<<"$out" || true
exposure="$(sed -n 's/.*Overall exposure level for portal-proxy\.service: \([0-9.]*\).*/\1/p' <<<"$out")"
[[ -n "$exposure" ]] || { printf '%s\n' "$out"; fail "no overall exposure level in the output"; }
echo "exposure: $exposure (at most $MAX_EXPOSURE)"
awk -v e="$exposure" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(e <= m) }' ||
    fail "exposure $exposure is above $MAX_EXPOSURE"
[[ $status -eq 0 ]] || fail "systemd-analyze security exited with $status"
echo "ok"

echo "== unit and conf/portal-proxy.yaml agree"
pid_unit="$(sed -n 's/^PIDFile=//p' "$unit")"
rundir="/run/$(sed -n 's/^RuntimeDirectory=//p' "$unit")"
[[ "$pid_unit" == "$rundir"/* ]] || fail "PIDFile=$pid_unit is not in RuntimeDirectory ($rundir)"
if [[ -f "$conf" ]]; then
    pid_conf="$(sed -n 's/^ *pid_file: *\([^ #]*\).*/\1/p' "$conf")"
    sock_conf="$(sed -n 's/^ *upgrade_sock: *\([^ #]*\).*/\1/p' "$conf")"
    [[ "$pid_conf" == "$pid_unit" ]] ||
        fail "server.pid_file ($pid_conf) in $conf is not PIDFile= ($pid_unit)"
    [[ "$sock_conf" == "$rundir"/* ]] ||
        fail "server.upgrade_sock ($sock_conf) in $conf is not in $rundir"
    echo "ok"
else
    echo "skipped: no $conf"
fi

echo "systemd/check.sh: PASS, exposure $exposure"
