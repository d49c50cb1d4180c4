# Every target that runs code first makes sure .venv matches pyproject.toml (a no-op when it does).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PIP    := $(PY) -m pip --disable-pip-version-check -q
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_NO_ADVISORY_WARNINGS := 1

.PHONY: demo demon vpgc vpgc-full vpgc-blip2 vpgc-icl experiments joint-vs-concat test test-fast lint bench clean-demo venv

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/drum demo --out runs/demo

# The built-in DEMON-style benchmark: chance, the shipped base zero-shot, a supervised ceiling.
demon: $(STAMP)
	$(VENV)/bin/drum demon benchmark --out runs/demon

# VPG-C zero-shot on the built-in DEMON-style tasks: one seed per arm (vpgc-full: three for
# VPG-C, reusing the seed-0 arms).
vpgc: $(STAMP)
	$(VENV)/bin/drum vpgc experiments --out runs/vpgc --demon runs/demon

vpgc-full: $(STAMP)
	$(VENV)/bin/drum vpgc experiments --out runs/vpgc --demon runs/demon --full

# VPG-C where it has a gap to complete: the built-in BLIP-2 (shipped; its Q-Former drops the
# small object), held-out near / far / primary tasks, VPG-C (3 seeds) beside its ablation,
# a same-size LoRA, queries only, VPG-C trained on the held-out tasks and stage A.
vpgc-blip2: $(STAMP)
	$(VENV)/bin/drum vpgc bottleneck --out runs/vpgc_blip2

# Does VPG-C change few-shot ICL? The world LVLM with and without an adapter trained on
# edited-twin episodes (reuses the demo's world and DRUM embedder).
vpgc-icl: $(STAMP)
	test -f runs/demo/results/icl_results.json || $(VENV)/bin/drum demo --out runs/demo
	$(VENV)/bin/drum vpgc icl --out runs/vpgc_icl --demo runs/demo

# DRUM vs the similarity strategies with ablations (reuses the demo's world and models).
experiments: $(STAMP)
	test -f runs/demo/world/world.json || $(VENV)/bin/drum demo --out runs/demo
	$(VENV)/bin/drum experiments --out runs/experiments --demo runs/demo \
		--rounds 3 --train-seeds 0,1,2 --max-queries 500

# concat (two CLIP embeddings side by side) vs joint (the world LVLM's last-token state of the
# image and text read together): few-shot ICL and retrieval quality on the same 500 test queries.
joint-vs-concat: $(STAMP)
	test -f runs/world/world.json || $(VENV)/bin/drum data make-world --out runs/world
	$(PY) -m drum.pipelines.joint_vs_concat --world runs/world --out runs/joint_vs_concat \
		--max-queries 500

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check drum tests benchmarks
	$(VENV)/bin/ruff format --check drum tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean-demo:
	rm -rf runs/demo
