#!/usr/bin/env bash
# The live line under an API burst (docs/BENCHMARKS.md): a headless station judges a
# repeating folder of the sample parts at a fixed rate; its parts/s is measured unloaded, then
# while one curl process (libcurl's parallel mode, so the client itself costs little CPU)
# fires 2,000 mixed requests at the API, a chunk every second, and a few sockets sit half-open. Prints both rates
# and their ratio; the goal is at least 90 %.
#
# Usage: scripts/bench-api-burst.sh [path/to/inspecta]   (make bench-api)
# Env: BENCH_RATE (parts/s the line is fed, 30), BENCH_WINDOW_S (unloaded window, 20),
#      BENCH_PARALLEL (requests in flight, 16), BENCH_SLOWLORIS (half-open sockets, 50),
#      BENCH_BURST_S (seconds the 2,000 requests are spread over, 20; 1 to 100, dividing 100).
set -euo pipefail

inspecta=$(realpath "${1:-target/release/inspecta}")
rate=${BENCH_RATE:-30}
window=${BENCH_WINDOW_S:-20}
parallel=${BENCH_PARALLEL:-16}
slowloris=${BENCH_SLOWLORIS:-50}
burst_s_wanted=${BENCH_BURST_S:-20}
cd "$(dirname "$0")/.."

work=$(mktemp -d)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
station_pid=
cleanup() {
    jobs -p | xargs -r kill 2>/dev/null || true
    if [[ -n $station_pid ]]; then kill -TERM "$station_pid" 2>/dev/null && wait "$station_pid" || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/station.toml" <<EOF
[station]
name = "bench-api"
[model]
path = "models/casting"
[source]
kind = "folder"
path = "samples/casting"
parts_per_second = $rate
repeat = true
[store]
dir = "$work/records"
[api]
listen = "127.0.0.1:$port"
EOF
"$inspecta" run --headless --config "$work/station.toml" 2> "$work/station.log" &
station_pid=$!
until curl -sf "$base/health" > /dev/null; do
    kill -0 "$station_pid" || { cat "$work/station.log"; exit 1; }
    sleep 0.2
done

inspected() { curl -sf "$base/status" | jq .inspected; }
now() { date +%s.%N; }
per_second() { echo "scale=2; ($2 - $1) / ($4 - $3)" | bc; }

# Warm-up: the model's first runs and a few defects in the store to fetch.
sleep 5
n0=$(inspected); t0=$(now)
sleep "$window"
n1=$(inspected); t1=$(now)
unloaded=$(per_second "$n0" "$n1" "$t0" "$t1")

defect=$(curl -sf "$base/verdicts?verdict=defect&limit=1" | jq '.items[0].id')
latest=$(curl -sf "$base/verdicts?limit=1" | jq '.items[0].id')
image=$(ls samples/casting/defect/* | head -1)
month_ago=$(date -u -d '30 days ago' +%Y-%m-%dT%H:%M:%SZ)
# 2,000 requests, interleaved so every kind is in flight throughout; cut into one chunk per
# second of the burst (curl's --rate does nothing with --parallel), each fired at once.
chunks=$burst_s_wanted
per_chunk=$(( 100 / chunks ))
for i in $(seq 1 100); do
    chunk=$(( (i - 1) / per_chunk ))
    for path in "/verdicts?limit=100" "/verdicts/$(( latest - i ))" "/verdicts/$defect/image" \
        "/status" "/metrics" "/verdicts?limit=100&verdict=defect" "/verdicts/$(( latest - 2 * i ))" \
        "/status" "/metrics" "/kpis" "/kpis?since=$month_ago" "/health" "/verdicts/$defect" \
        "/status" "/metrics" "/verdicts?limit=20"; do
        printf 'url = "%s%s"\noutput = "/dev/null"\nwrite-out = "%%{http_code} %%{errormsg}\\n"\nnext\n' "$base" "$path"
    done >> "$work/burst-$chunk.curl"
    for _ in 1 2 3 4; do
        printf 'url = "%s/predict"\ndata-binary = "@%s"\nheader = "content-type: image/jpeg"\n' "$base" "$image"
        printf 'output = "/dev/null"\nwrite-out = "%%{http_code} %%{errormsg}\\n"\nnext\n'
    done >> "$work/burst-$chunk.curl"
done

# A `next` with no URL after it is a transfer of its own that fails and aborts the rest.
for file in "$work"/burst-*.curl; do sed -i '$ d' "$file"; done

# Half-open clients: half a request line, then silence until the server drops them.
for _ in $(seq 1 "$slowloris"); do
    ( exec 3<>"/dev/tcp/127.0.0.1/$port" && printf 'GET /status HTTP/1.1\r\nHost: sta' >&3 && exec sleep 120 ) 2>/dev/null &
done

n2=$(inspected); t2=$(now)
for chunk in $(seq 0 $(( chunks - 1 ))); do
    due=$(echo "$t2 + $chunk + 1" | bc)
    nice -n 19 curl -s --parallel --parallel-max "$parallel" -K "$work/burst-$chunk.curl" >> "$work/codes.txt" || true
    wait_s=$(echo "$due - $(now)" | bc)
    if [[ $wait_s != -* ]]; then sleep "$wait_s"; fi
done
n3=$(inspected); t3=$(now)
burst=$(per_second "$n2" "$n3" "$t2" "$t3")
burst_s=$(echo "scale=1; ($t3 - $t2) / 1" | bc)

echo "== The live line under an API burst (fed $rate parts/s, $parallel requests in flight, $slowloris half-open sockets) =="
echo "unloaded:    $unloaded parts/s over ${window} s"
echo "burst:       $(wc -l < "$work/codes.txt") requests in ${burst_s} s; answers: $(cut -d' ' -f1 "$work/codes.txt" | sort | uniq -c | awk '{printf "%s x%s  ", $2, $1}')"
if grep -q '^000' "$work/codes.txt"; then
    echo "failed:      $(grep '^000' "$work/codes.txt" | cut -d' ' -f2- | sort | uniq -c | tr -s ' ' | paste -sd ';')"
fi
echo "under burst: $burst parts/s"
echo "ratio:       $(echo "scale=1; 100 * $burst / $unloaded" | bc) % of the unloaded rate (goal: at least 90 %)"
