# Inspecta: `make demo` runs the inspector on the bundled samples, `make test` runs every check.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
DATASETS ?= ../shared/datasets
BACKBONE ?= ../shared/backbones/efficientnet_lite0_imagenet_224.onnx
INSPECTA := target/release/inspecta

.PHONY: deps build demo test lint bench bench-live models eval-casting clean

deps:
	@scripts/install-deps.sh

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

## test: formatting, lints, and every unit and integration test.
test: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	INSPECTA_DATASETS=$(abspath $(DATASETS)) $(CARGO) test --workspace --locked

## bench: tract latency and throughput, side by side with ONNX Runtime (docs/BENCHMARKS.md).
bench: deps
	PYTHON=$$(scripts/python-env.sh) $(CARGO) bench -p inspecta-pipeline --bench inference --locked

## bench-live: the live station on a 30 fps clip, capture-to-verdict latency (docs/BENCHMARKS.md).
bench-live: deps
	$(CARGO) bench -p inspecta-pipeline --bench live --locked

## models: rebuild the bundled models from the public datasets (needs ../shared).
models: deps
	py=$$(scripts/python-env.sh); \
	rm -rf out/splits; \
	$$py models/recipe/split.py $(DATASETS)/casting/train out/splits/casting --map ok_front=good --map def_front=defect; \
	$$py models/recipe/split.py $(DATASETS)/xsdd out/splits/xsdd; \
	$$py models/recipe/train.py --data out/splits/casting/train --heldout out/splits/casting/heldout \
	  --backbone $(BACKBONE) --out models/casting --name casting-defect --good good --flips \
	  --uncertain-band 0.3 0.7 --description "Cast pump impellers, top view: good vs defect (casting dataset, CC BY-NC-ND 4.0)"; \
	$$py models/recipe/train.py --data out/splits/xsdd/train --heldout out/splits/xsdd/heldout \
	  --backbone $(BACKBONE) --out models/xsdd --name xsdd-steel --class-threshold 0.5 \
	  --description "X-SDD hot-rolled steel strip defects, 7 classes (Apache-2.0 data)"

## eval-casting: the bundled model on its held-out split of the casting dataset.
eval-casting: build
	[[ -d out/splits/casting/heldout ]] || python3 models/recipe/split.py $(DATASETS)/casting/train out/splits/casting --map ok_front=good --map def_front=defect
	$(INSPECTA) eval out/splits/casting/heldout --out out/eval/casting-heldout

clean:
	$(CARGO) clean
	rm -rf out
