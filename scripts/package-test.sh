#!/usr/bin/env bash
# Installs the .deb that `make package` built, as a plant would, and checks what it promises:
# a stripped binary that runs from any folder with the installed models and trunk, the
# unit and the config in place, the config running a station, and a clean removal.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
deb=$(ls -t target/debian/inspecta_*.deb | head -1)
sudo=""
[[ $(id -u) -eq 0 ]] || sudo="sudo"
fail() {
  echo "package test FAILED: $*" >&2
  exit 1
}

echo "== installing $deb ($(du -h "$deb" | cut -f1)) =="
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "./$deb"
trap '$sudo dpkg --purge inspecta >/dev/null 2>&1 || true' EXIT

bin=$(command -v inspecta) || fail "no inspecta on PATH"
[[ $bin == /usr/bin/inspecta ]] || fail "inspecta is $bin, not /usr/bin/inspecta"
if readelf -S "$bin" | grep -qE '\.(debug_info|symtab)'; then fail "$bin is not stripped"; fi
echo "binary: $bin, $(du -h "$bin" | cut -f1), $(inspecta --version)"

work=$(mktemp -d)
cd "$work"
echo "== predict from $work: the installed model is the default =="
good=$(ls "$repo"/samples/casting/good/* | head -1)
inspecta predict --json "$good" | tee predict.json
grep -q '"verdict":"good"' predict.json || fail "the installed model did not judge the good sample good"

echo "== train anomaly: the installed trunk is the default =="
inspecta train anomaly --good "$repo/samples/magnetic_tile" --out "$work/tiles" --coreset 0.1 --quiet
[[ -f $work/tiles/model.toml ]] || fail "no model trained"

echo "== the installed config runs a station (its camera swapped for the sample folder, no API) =="
[[ -f /etc/inspecta/station.toml ]] || fail "no /etc/inspecta/station.toml"
unit=$(ls /lib/systemd/system/inspecta.service /usr/lib/systemd/system/inspecta.service 2>/dev/null | head -1)
[[ -n $unit ]] || fail "no systemd unit"
grep -q '^ExecStart=/usr/bin/inspecta run --headless --config /etc/inspecta/station.toml' "$unit" ||
  fail "$unit does not run the installed binary on the installed config"
if command -v systemd-analyze >/dev/null; then systemd-analyze verify "$unit"; fi
sed -e 's#^kind = "v4l2"#kind = "folder"#' \
  -e "s#^device = .*#path = \"$repo/samples/casting\"\nparts_per_second = 50.0#" \
  -e "s#^dir = \"/var/lib/inspecta/records\"#dir = \"$work/records\"#" \
  -e '/^\[api\]/,$d' \
  /etc/inspecta/station.toml >station.toml
inspecta run --headless --config station.toml
records=$(ls "$work/records")
[[ -n $records ]] || fail "the station stored nothing"

echo "== removal =="
$sudo dpkg --purge inspecta
[[ ! -e /usr/bin/inspecta ]] || fail "/usr/bin/inspecta is still there"
[[ ! -e /usr/share/inspecta ]] || fail "/usr/share/inspecta is left behind"
trap - EXIT
rm -rf "$work"
echo "package test passed"
