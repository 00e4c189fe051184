#!/usr/bin/env bash
# Makes a video of the casting sample parts passing under a camera, for the file-source demo
# and the live bench: MJPEG in Matroska, 300x300 at 30 fps, each part shown for a few frames.
# The order is fixed (good and defect parts taken in turn, each list sorted by name), so the
# same samples always give the same clip.
#
#   scripts/make-clip.sh [OUT] [FRAMES_PER_PART] [LOOPS]
#   defaults:            out/clip/casting-line.mkv  10  1
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-out/clip/casting-line.mkv}
frames_per_part=${2:-10}
loops=${3:-1}

command -v gst-launch-1.0 >/dev/null || {
  echo "error: gst-launch-1.0 not found (scripts/install-deps.sh installs gstreamer1.0-tools)" >&2
  exit 1
}

# multifilesrc reads numbered files: one link per video frame, in playing order.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mapfile -t good < <(find "$root/samples/casting/good" -maxdepth 1 -type f -name '*.jp*g' | LC_ALL=C sort)
mapfile -t defect < <(find "$root/samples/casting/defect" -maxdepth 1 -type f -name '*.jp*g' | LC_ALL=C sort)
order=()
for ((i = 0; i < ${#good[@]} || i < ${#defect[@]}; i++)); do
  ((i < ${#good[@]})) && order+=("${good[i]}")
  ((i < ${#defect[@]})) && order+=("${defect[i]}")
done
((${#order[@]})) || { echo "error: no images in $root/samples/casting/{good,defect}" >&2; exit 1; }
n=0
for ((loop = 0; loop < loops; loop++)); do
  for part in "${order[@]}"; do
    for ((f = 0; f < frames_per_part; f++)); do
      ln -s "$part" "$work/$(printf '%06d' "$n").jpeg"
      n=$((n + 1))
    done
  done
done

mkdir -p "$(dirname "$out")"
gst-launch-1.0 -q \
  multifilesrc location="$work/%06d.jpeg" index=0 caps="image/jpeg,framerate=30/1" \
  ! jpegdec ! videoconvert ! videoscale ! video/x-raw,format=I420,width=300,height=300 \
  ! jpegenc ! matroskamux ! filesink location="$out"
echo "$out: $((n / frames_per_part)) parts x $frames_per_part frames, $n frames at 30 fps"
