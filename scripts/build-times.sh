#!/usr/bin/env bash
# Dev build times of two checkouts side by side (docs/BENCHMARKS.md, "Build times"): our own
# crates built from scratch over prebuilt dependencies, then the rebuild after touching a store
# file, alternated twice in one run. Usage: scripts/build-times.sh OLD_CHECKOUT NEW_CHECKOUT
# (both share one target dir, so dependencies are built once).
set -euo pipefail
old=$(realpath "$1") new=$(realpath "$2")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$new/target}
t() { local s e; s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc; }
for round in 1 2; do
  for tree in before after; do
    if [[ $tree == before ]]; then dir=$old; else dir=$new; fi
    cd "$dir"
    pkgs=$(cargo metadata --no-deps --format-version 1 | python3 -c 'import json,sys; print(" ".join("-p "+p["name"] for p in json.load(sys.stdin)["packages"]))')
    store=pipeline/src/store/mod.rs
    cargo build --workspace --locked > /dev/null 2>&1
    # shellcheck disable=SC2086
    cargo clean $pkgs > /dev/null 2>&1
    ours=$(t cargo build --workspace --locked)
    touch $store
    incr=$(t cargo build --workspace --locked)
    echo "round $round $tree ours-from-scratch $ours incr-store $incr"
  done
done
