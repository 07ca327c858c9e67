# Helpers shared by the bench scripts (source it): processes started with `spawn` are stopped on
# exit; waits poll a condition with a bound and abort the bench when it is not met.
pids=()
bench_cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -z "${work:-}" ] || rm -rf "$work"; }
trap bench_cleanup EXIT
tck=$(getconf CLK_TCK)
# a free loopback TCP port
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# utime+stime ticks of the given processes
cpu_ticks() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done; echo "$t"; }
# resident memory of the given processes, KiB
rss_kb() { local t=0 p; for p in "$@"; do [ -r "/proc/$p/status" ] && t=$((t + $(awk '/VmRSS/{print $2}' "/proc/$p/status"))); done; echo "$t"; }
# sum of a Prometheus metric's samples on an admin listener (host:port)
metric() { curl -s --max-time 2 "http://$1/metrics" | awk -v m="$2" '$1 ~ "^"m"({|$)" {s+=$2} END {printf "%.0f", s}'; }
# wait_until DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds, or aborts
wait_until() {
  local what=$1 secs=$2 t0=$SECONDS; shift 2
  until "$@"; do
    if [ $((SECONDS - t0)) -ge "$secs" ]; then echo "bench aborted: $what not reached within $secs s" >&2; exit 1; fi
    sleep 0.1
  done
}
# ferrocast_config RTMP_PORT ADMIN_PORT [EXTRA]: a config (warn logs, HTTP on any port, no HTTPS)
ferrocast_config() {
  printf '[log]\nlevel = "warn"\n[rtmp]\nlisten = "127.0.0.1:%s"\n[http]\nlisten = "127.0.0.1:0"\n[https]\nenabled = false\n[admin]\nlisten = "127.0.0.1:%s"\n%s\n' "$1" "$2" "${3:-}"
}
ready() { curl -sf -o /dev/null --max-time 1 "http://$1/readyz"; }
# metric_is ADMIN NAME VALUE
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }
