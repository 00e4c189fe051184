#!/usr/bin/env bash
# CPU the operator panel costs on top of the same station headless: one folder line at
# 30 parts/s (the casting samples, repeating), run headless and then with the panel on a
# virtual display with Mesa's software renderer; each measured over the same 20 s window
# after 10 s of warm-up, from /proc/<pid>/stat. Prints per cent of one core.
set -euo pipefail
inspecta=${1:-target/release/inspecta}
rate=${RATE:-30}
warm=${WARM_S:-10}
window=${WINDOW_S:-20}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
ticks=$(getconf CLK_TCK)

config() {
  cat >"$work/$1.toml" <<TOML
[station]
name = "cpu-$1"
[model]
path = "models/casting"
threads = 1
[source]
kind = "folder"
path = "samples/casting"
parts_per_second = $rate.0
repeat = true
[store]
dir = "$work/$1"
images = "none"
TOML
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

measure() { # name, pid: per cent of a core over the window
  sleep "$warm"
  local before after
  before=$(cpu_ticks "$2")
  sleep "$window"
  after=$(cpu_ticks "$2")
  echo "$1 $(((after - before) * 100 / ticks / window))"
}

config headless
"$inspecta" run --headless --config "$work/headless.toml" 2>"$work/headless.log" &
headless=$(measure headless $!)
kill -TERM %1 && wait %1 || true

display=:$((90 + RANDOM % 100))
Xvfb "$display" -screen 0 1280x800x24 >/dev/null 2>&1 &
sleep 1
config panel
DISPLAY=$display LIBGL_ALWAYS_SOFTWARE=1 "$inspecta" run --config "$work/panel.toml" 2>"$work/panel.log" &
pid=$!
sleep 3
# An operator signed in, so the panel shows every part as it comes.
window_id=$(DISPLAY=$display xdotool search --name "Inspecta: cpu-panel" | head -1)
DISPLAY=$display xdotool windowfocus --sync "$window_id" type "bench"
DISPLAY=$display xdotool windowfocus --sync "$window_id" key Return
panel=$(measure panel $pid)
echo "== CPU at $rate parts/s, ${window} s window after ${warm} s ($(nproc) cores, software GL) =="
echo "$headless" | awk '{printf "headless station:     %3d %% of a core\n", $2}'
echo "$panel" | awk '{printf "station with panel:   %3d %% of a core\n", $2}'
echo "panel's own cost:     $(( ${panel#* } - ${headless#* } )) % of a core"
