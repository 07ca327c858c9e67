# Helpers shared by the interop scripts (sourced, not run).

# stop_pid PID: TERM, up to 5 s to exit, then KILL; reaps it. An empty PID is a no-op.
stop_pid() {
  local p=$1 i
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
  for i in $(seq 1 50); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

# free_ports N: prints N free loopback TCP ports (held open together so they are distinct).
free_ports() {
  node -e '
    const net = require("net"); const n = +process.argv[1]; const ss = []; let ok = 0;
    for (let i = 0; i < n; i++) {
      const s = net.createServer(); ss.push(s);
      s.listen(0, "127.0.0.1", () => { if (++ok === n) {
        console.log(ss.map((x) => x.address().port).join(" ")); ss.forEach((x) => x.close()); } });
    }' "$1"
}

# json FIELD.PATH < json  (prints objects as JSON, missing as "null")
json() {
  node -e '
    let j; try { j = JSON.parse(require("fs").readFileSync(0, "utf8")); } catch { j = null; }
    const v = process.argv[1].split(".").reduce((o, k) => (o == null ? o : o[k]), j);
    console.log(v !== null && typeof v === "object" ? JSON.stringify(v) : String(v ?? null));' "$1"
}
