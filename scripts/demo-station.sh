#!/usr/bin/env bash
# `make demo`, station part: the sample parts through a headless station with its record store
# and HTTP API (samples/station.example.toml), then a look at what the API serves.
set -euo pipefail
inspecta=${1:-target/release/inspecta}
api=http://127.0.0.1:8080

rm -rf out/station/records out/station/verdicts.jsonl
"$inspecta" run --headless --config samples/station.example.toml &
station=$!
trap 'kill -TERM $station 2>/dev/null || true' EXIT

# A folder source ends after its last part; the API keeps serving until SIGTERM.
for _ in $(seq 600); do
    if curl -sf "$api/status" | grep -q '"finished":true'; then
        break
    fi
    if ! kill -0 "$station" 2>/dev/null; then
        wait "$station"
        exit 1
    fi
    sleep 0.2
done

show() {
    echo
    echo "\$ curl $*"
    curl -sf "$@"
    echo
}
show "$api/status"
show "$api/verdicts?verdict=defect&limit=1"
id=$(curl -sf "$api/verdicts?verdict=defect&limit=1" | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2)
curl -sf -o out/station/defect.jpg "$api/verdicts/$id/image"
echo "(the image kept with record $id is in out/station/defect.jpg)"
show -X POST -H 'content-type: application/json' \
    -d '{"reviewer":"demo","action":"override","label":"good","reason":"demo override"}' \
    "$api/verdicts/$id/review"
echo
echo "\$ curl $api/metrics | grep -E '^inspecta_(frames|verdicts|records)'"
curl -sf "$api/metrics" | grep -E '^inspecta_(frames|verdicts|records)'

kill -TERM "$station"
wait "$station"
trap - EXIT
echo
echo "Verdicts recorded in out/station/verdicts.jsonl: $(wc -l < out/station/verdicts.jsonl)"
