#!/usr/bin/env bash
# Builds an MVTec AD style layout from the magnetic tile dataset, with symbolic links (no
# copies): train/good from part of MT_Free, test/good from the rest, test/<defect> for every
# defect image and ground_truth/<defect>/<name>_mask.png for its pixel mask.
# The split hashes each file name, so it is the same on every machine.
# Usage: scripts/magnetic-tile-layout.sh SRC DST [TEST_PERCENT=35]
set -euo pipefail
src=$(realpath "$1")
dst=$2
test_percent=${3:-35}
[[ -d $src/MT_Free/Imgs ]] || { echo "$src is not the magnetic tile dataset (no MT_Free/Imgs)" >&2; exit 1; }
rm -rf "$dst"
mkdir -p "$dst/train/good" "$dst/test/good"
for image in "$src"/MT_Free/Imgs/*.jpg; do
  name=$(basename "$image")
  bucket=$(( 16#$(printf %s "$name" | md5sum | cut -c1-8) % 100 ))
  if (( bucket < test_percent )); then split=test; else split=train; fi
  ln -s "$image" "$dst/$split/good/$name"
done
for dir in "$src"/MT_*/; do
  class=$(basename "$dir" | sed 's/^MT_//' | tr '[:upper:]' '[:lower:]')
  [[ $class == free ]] && continue
  mkdir -p "$dst/test/$class" "$dst/ground_truth/$class"
  for image in "$dir"Imgs/*.jpg; do
    stem=$(basename "$image" .jpg)
    ln -s "$image" "$dst/test/$class/$stem.jpg"
    ln -s "${image%.jpg}.png" "$dst/ground_truth/$class/${stem}_mask.png"
  done
done
echo "$dst: train/good $(ls "$dst/train/good" | wc -l), test/good $(ls "$dst/test/good" | wc -l), test defects $(find "$dst/test" -mindepth 2 -path '*/good/*' -prune -o -type l -print | wc -l)"
