# Training both bundled models on a borrowed GPU machine in one call (issue 12, section 4).
# Included by the top-level Makefile, which defines PY and DATA (../shared/data by default).
#
#   make gpu-pack        here (GDAL, the shared data): the training data of both bundled
#                        models packed into build/gpu/rts.npz and build/gpu/cobra.npz, the
#                        same recipe as `make models` (RTS: bundled.prepare, Peel top half
#                        (synthetic scenes: GPU_RTS_SYNTHETIC_SCENES); COBRA: FrontLearning, labels_1px); readable
#                        without GDAL or PIL
#   make gpu-train       tools/gpu_train.sh (on the GPU machine: trains both from
#                        build/gpu, models and logs under $OUT or build/gpu_out)
#   make gpu-train-cpu-test   the same script, 2 steps each on the CPU
#
# On the GPU machine nothing is prepared: carry build/gpu and run `tools/gpu_train.sh`.

GPU_PACK ?= build/gpu
GPU_WORK ?= build/gpu_work
GPU_RTS_CHIP ?= 128
GPU_RTS_HOLDOUT_ROW ?= 128
GPU_RTS_SYNTHETIC_SCENES ?= 0

.PHONY: gpu-pack gpu-train gpu-train-cpu-test

gpu-pack:
	@[ -f "$(DATA)/rts/peel/peel_s2_bgrn_10m.tif" ] || { echo "Peel data not found under $(DATA)/rts/peel (set DATA=...)"; exit 1; }
	@[ -d "$(COBRA_DATA)/images" ] || { echo "FrontLearning data not found under $(COBRA_DATA)"; exit 1; }
	rm -rf $(GPU_WORK) && mkdir -p $(GPU_PACK)
	$(PY) -c "from pathlib import Path; from arctic_assist.training.bundled import prepare; \
	  prepare(Path('$(DATA)'), Path('$(GPU_WORK)'), holdout_row=$(GPU_RTS_HOLDOUT_ROW), \
	  chip=$(GPU_RTS_CHIP), synthetic_scenes=$(GPU_RTS_SYNTHETIC_SCENES))"
	$(PY) -m arctic_assist.training pack --data $(GPU_WORK)/merged --out $(GPU_PACK)/rts.npz
	$(PY) -m arctic_assist.training pack --frontlearning $(COBRA_DATA) --labels labels_1px \
	  --out $(GPU_PACK)/cobra.npz
	@du -b $(GPU_PACK)/*.npz; du -sb $(GPU_PACK)

# the venv's python here; on the GPU machine (no .venv) its python3
GPU_PYTHON ?= $(if $(wildcard $(PY)),$(PY),python3)

gpu-train:
	PYTHON=$(GPU_PYTHON) tools/gpu_train.sh

gpu-train-cpu-test:
	PYTHON=$(GPU_PYTHON) tools/gpu_train.sh --cpu-test build/gpu_cpu_test
