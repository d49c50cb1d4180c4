"""The image-feature cache on the Qwen families: ``score_feedback`` with the cache on vs
``HFLVLM(image_feature_cache_size=0)``, side by side.

Model: the tiny random Qwen2-VL of ``tests/lvlm/tiny_lvlms.py`` (``--family qwen2_5_vl``: its
Qwen2.5-VL; ``qwen3_vl``: its Qwen3-VL, whose cache entries hold deepstack features too), built
into a temporary directory, its processor keeping images up to 64 x 64 px,
so that images of 32, 48 and 64 px get patch grids of their own. Workload: ``--queries`` (20)
queries, each with ``--candidates`` (10) one-shot candidates drawn (seeded) from a pool of
``--pool`` (30) examples, so pool images recur across queries as retrieved demonstrations do;
one image an example (sizes cycling through 32, 48 and 64 px). ``score_feedback`` scores each
query's zero-shot prompt and its one-shot prompts (``FeedbackConfig(batch_size=32)``, a fresh
on-disk cache each run).

Sides: ``cache`` (the default ``HFLVLM``) and ``no_cache`` (``image_feature_cache_size=0``), a
fresh model per side and round, alternated over ``--rounds`` (3) rounds (which side goes first
alternates); seconds are per round (mean), ``speedup`` = ``no_cache``'s total time over the
row's. ``vision_calls`` and ``patches_encoded`` count the vision tower's calls and the patch
rows it ran per round (a hook). The script exits 1 if any ``s(c)`` of the two sides differs by
more than 1e-5. On a tiny model the vision tower is a small share of the work, so the ratio
says little about real sizes (a 7B model's ViT runs ~1,000 patches an image).

Usage: ``OMP_NUM_THREADS=1 python benchmarks/bench_feature_cache.py [--quick]
[--family qwen2_vl|qwen2_5_vl|qwen3_vl]``; ``--quick``: 4 queries x 3 candidates, 1 round.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO_ROOT, report

from drum.data.example import Example
from drum.feedback import FeedbackCache, FeedbackConfig, score_feedback
from drum.lvlm.hf import HFLVLM

TOLERANCE = 1e-5
SIZES = (32, 48, 64)
SIDES = ("cache", "no_cache")


def make_examples(directory: Path, count: int, prefix: str, seed: int) -> list[Example]:
    """``count`` VQA examples, each with its own random-block PNG (sizes cycling ``SIZES``)."""
    from PIL import Image

    from drum.builtin.world.language import vocabulary

    words = sorted(vocabulary())
    rng = np.random.default_rng(seed)
    examples = []
    for index in range(count):
        size = SIZES[index % len(SIZES)]
        blocks = rng.integers(0, 256, size=(size // 8, size // 8, 3), dtype=np.uint8)
        path = directory / f"{prefix}{index}.png"
        Image.fromarray(blocks).resize((size, size), Image.NEAREST).save(path)
        examples.append(
            Example(
                id=f"{prefix}{index}",
                images=(path,),
                text=" ".join(rng.choice(words, size=6)),
                answers=(str(rng.choice(words)),),
                task="vqa",
            )
        )
    return examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 queries x 3 candidates, 1 round")
    parser.add_argument(
        "--family", choices=("qwen2_vl", "qwen2_5_vl", "qwen3_vl"), default="qwen2_vl"
    )
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--candidates", type=int, default=10)
    parser.add_argument("--pool", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.queries, args.candidates, args.pool, args.rounds = 4, 3, 6, 1
    sys.path.insert(0, str(REPO_ROOT))  # the tiny models of tests/lvlm
    from tests.lvlm.tiny_lvlms import BUILDERS

    work = Path(tempfile.mkdtemp(prefix="bench-feature-cache-"))
    model = BUILDERS[args.family](work / "model", max_pixels=64 * 64).path
    (work / "images").mkdir()
    queries = make_examples(work / "images", args.queries, "q", seed=1)
    pool = make_examples(work / "images", args.pool, "p", seed=2)
    rng = np.random.default_rng(3)
    candidates = {
        q.id: [pool[int(i)] for i in rng.choice(len(pool), size=args.candidates, replace=False)]
        for q in queries
    }
    config = FeedbackConfig(candidates=args.candidates, batch_size=32)
    seconds = {side: 0.0 for side in SIDES}
    calls: dict[str, list[int]] = {side: [] for side in SIDES}
    scores: dict[str, dict] = {}
    for round_ in range(args.rounds):
        order = SIDES if round_ % 2 == 0 else SIDES[::-1]
        for side in order:
            lvlm = HFLVLM(model, image_feature_cache_size=4096 if side == "cache" else 0)
            seen: list[int] = []
            lvlm.model.model.visual.register_forward_hook(
                lambda module, inputs, output, seen=seen: seen.append(len(inputs[0]))
            )
            cache = FeedbackCache(work / f"feedback-{side}-{round_}.jsonl")
            start = time.perf_counter()
            feedback = score_feedback(lvlm, queries, candidates, cache, config, progress=False)
            seconds[side] += time.perf_counter() - start
            calls[side] = seen
            scores[side] = {
                (f.query_id, c): s
                for f in feedback
                for c, s in zip(f.candidate_ids, f.scores, strict=True)
            }
    difference = max(abs(scores["cache"][key] - scores["no_cache"][key]) for key in scores["cache"])
    prompts = args.queries * (args.candidates + 1)
    images = sum(1 + (c is not None) for _ in queries for c in (None, *range(args.candidates)))
    rows = [
        {
            "case": side,
            "prompts": prompts,
            "images_in_prompts": images,
            "vision_calls": len(calls[side]),
            "patches_encoded": sum(calls[side]),
            "seconds": seconds[side] / args.rounds,
            "speedup": seconds["no_cache"] / seconds[side],
        }
        for side in SIDES
    ]
    meta = {
        "family": args.family,
        "queries": args.queries,
        "candidates": args.candidates,
        "pool": args.pool,
        "rounds": args.rounds,
        "distinct_images": len({p for q in queries for p in q.images})
        + len({p for q in queries for c in candidates[q.id] for p in c.images}),
        "max_abs_difference": difference,
        "tolerance": TOLERANCE,
    }
    report("feature_cache_quick" if args.quick else "feature_cache", rows, meta)
    if difference > TOLERANCE:
        sys.exit(f"cache on vs off: max |s(c) difference| {difference:.2e} > {TOLERANCE}")


if __name__ == "__main__":
    main()
