#!/usr/bin/env bash
# Installs what Inspecta needs on Debian/Ubuntu, and only what is missing: a machine that
# already has everything is not touched (no apt-get update). Sets: `run` (build and the
# demo, the default), `test` (adds the servers and display the tests start), `python` (adds
# Python for the benchmarks and model recipes).
set -euo pipefail

# What building Inspecta and running the demo need.
RUN_PACKAGES=(
  pkg-config gcc make
  # make demo talks to the station's HTTP API
  curl
  # GStreamer sources: headers for gstreamer-rs, plugins for cameras, RTSP, files and decoding
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-libav
  # gst-launch-1.0, which makes the demo's sample clip (scripts/make-clip.sh)
  gstreamer1.0-tools
  # UVC cameras through nokhwa: bindgen needs libclang for the V4L2 headers; nasm gives its
  # MJPEG decoder (mozjpeg) its SIMD code
  libclang-dev clang nasm
)
# What only the tests need: the real servers and displays they start.
TEST_PACKAGES=(
  # the operator panel's end-to-end test: a real X server, Mesa's software OpenGL, xdotool
  xvfb libgl1-mesa-dri libegl1 xdotool
  # a real RTSP server to lose and get back
  libgstrtspserver-1.0-dev gstreamer1.0-rtsp
  # a real MQTT broker to lose and get back; openssl makes the TLS test's certificates;
  # mosquitto_pub/sub for the broker configs' test (scripts/test-brokers.sh, python3 for its ports)
  mosquitto mosquitto-clients openssl python3
  # unshare, for a private tmpfs (full or read-only) under a station's store
  util-linux
  # the fleet's central store: a real PostgreSQL cluster per test (initdb, pg_ctl)
  postgresql
  # the plant view's browser test (headless Chromium over its DevTools protocol)
  chromium
  # the fleet's Prometheus config and rules (promtool) and a clustered broker's MQTT plugin
  prometheus rabbitmq-server
)
# What the benchmarks and model recipes need (ONNX Runtime reference, training).
PYTHON_PACKAGES=(python3 python3-venv)

sets=("$@")
((${#sets[@]})) || sets=(run)
APT_PACKAGES=()
for set in "${sets[@]}"; do
  case "$set" in
    run) APT_PACKAGES+=("${RUN_PACKAGES[@]}") ;;
    test) APT_PACKAGES+=("${RUN_PACKAGES[@]}" "${TEST_PACKAGES[@]}") ;;
    python) APT_PACKAGES+=("${RUN_PACKAGES[@]}" "${PYTHON_PACKAGES[@]}") ;;
    *)
      echo "usage: $0 [run|test|python]... (default: run)" >&2
      exit 2
      ;;
  esac
done

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Their packages start system services the tests do not use (each test starts its own
  # server on a free port): stopped, so they hold no ports or memory.
  for service in rabbitmq-server prometheus prometheus-node-exporter; do
    if [[ " ${missing[*]} " == *" $service "* ]]; then
      $sudo systemctl disable --now "$service" 2>/dev/null || $sudo service "$service" stop 2>/dev/null || true
    fi
  done
fi

if ! command -v cargo >/dev/null; then
  echo "error: cargo not found. Install Rust 1.95 or newer with rustup (https://rustup.rs)." >&2
  exit 1
fi
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component"
done
