#!/usr/bin/env bash
# Checks the fleet's shipped Prometheus files (packaging/prometheus) with Debian's prometheus:
# the config and rules validate, the rules' unit tests pass (each alert fires when it should
# and not in the nearby benign case), and a real Prometheus discovers stations from a targets
# file in the form `inspecta fleet ingest` writes, with their site, line and station labels.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
src=$here/packaging/prometheus
command -v promtool >/dev/null || { echo "promtool missing: scripts/install-deps.sh test" >&2; exit 1; }

tmp=$(mktemp -d)
prom_pid=""
cleanup() {
  [[ -n $prom_pid ]] && kill "$prom_pid" 2>/dev/null && wait "$prom_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# The shipped config names Debian's paths; here they point into the temp dir.
cp "$src/inspecta-rules.yml" "$src/inspecta-rules.test.yml" "$tmp/"
echo "test-token" >"$tmp/inspecta-station-token"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -e "s|/etc/prometheus/inspecta-rules.yml|$tmp/inspecta-rules.yml|" \
    -e "s|/etc/prometheus/inspecta-station-token|$tmp/inspecta-station-token|" \
    -e "s|/var/lib/inspecta/stations.json|$tmp/stations.json|" \
    -e "s|localhost:9090|127.0.0.1:$port|" \
    "$src/prometheus.yml" >"$tmp/prometheus.yml"
grep -q "$tmp/stations.json" "$tmp/prometheus.yml" || { echo "prometheus.yml no longer reads the ingest's targets file" >&2; exit 1; }

promtool check config "$tmp/prometheus.yml"
promtool check rules "$tmp/inspecta-rules.yml"
(cd "$tmp" && promtool test rules inspecta-rules.test.yml)

# As the ingest writes it (fleet/src/targets.rs): one group per announced station.
cat >"$tmp/stations.json" <<'JSON'
[
  {
    "targets": ["127.0.0.1:1"],
    "labels": {"site": "plant-a", "line": "line-2", "station": "cam1", "__scheme__": "http", "__metrics_path__": "/metrics"}
  }
]
JSON
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
  --web.listen-address="127.0.0.1:$port" >"$tmp/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$port/api/v1/targets" -o "$tmp/targets.json" 2>/dev/null \
    && python3 - "$tmp/targets.json" <<'PY'
import json, sys
targets = json.load(open(sys.argv[1]))["data"]["activeTargets"]
station = [t for t in targets if t["labels"].get("job") == "inspecta-stations"]
ok = any(t["labels"].get("site") == "plant-a" and t["labels"].get("line") == "line-2"
         and t["labels"].get("station") == "cam1" and t["scrapeUrl"] == "http://127.0.0.1:1/metrics"
         for t in station)
sys.exit(0 if ok else 1)
PY
  then
    echo "prometheus: the station from the ingest's targets file is scraped as plant-a/line-2/cam1"
    exit 0
  fi
  kill -0 "$prom_pid" 2>/dev/null || { cat "$tmp/prometheus.log" >&2; exit 1; }
  sleep 0.2
done
echo "prometheus never listed the station from its targets file" >&2
cat "$tmp/prometheus.log" >&2
exit 1
