#!/usr/bin/env bash
# Memory under decompression bombs (docs/BENCHMARKS.md): the release station's peak RSS
# (VmHWM) before, after four 16384x16384 PNG bombs posted to /predict at once, and after four
# real uploads at once (max_predictions = 4, so all four are judged together).
#
# Usage: scripts/bench-bomb-memory.sh [path/to/inspecta]
set -euo pipefail
inspecta=$(realpath "${1:-target/release/inspecta}")
cd "$(dirname "$0")/.."
bomb=vision/tests/fixtures/bomb-16384.png
part=samples/casting/defect/$(ls samples/casting/defect | head -1)
work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$work/station.toml" <<TOML
[station]
name = "bench-bomb"
[model]
path = "models/casting"
[source]
kind = "folder"
path = "samples/casting"
parts_per_second = 10
repeat = true
[store]
dir = "$work/records"
[api]
listen = "127.0.0.1:$port"
max_predictions = 4
TOML
"$inspecta" run --headless --config "$work/station.toml" 2> "$work/station.log" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
until curl -sf "http://127.0.0.1:$port/health" > /dev/null; do sleep 0.3; done
sleep 3
peak() { awk '/VmHWM/ {print $2 " kB"}' "/proc/$pid/status"; }
post() {
    for _ in 1 2 3 4; do
        curl -s -o /dev/null -w '%{http_code} ' -H "content-type: $2" --data-binary "@$1" "http://127.0.0.1:$port/predict" &
    done
    wait $(jobs -p | grep -v "^$pid$") 2>/dev/null || true
    echo
}
echo "peak RSS, line running:            $(peak)"
echo -n "4 bombs at once, answers: "; post "$bomb" image/png
echo "peak RSS after the bombs:          $(peak)"
echo -n "4 real uploads at once, answers: "; post "$part" image/jpeg
echo "peak RSS after the real uploads:   $(peak)"
