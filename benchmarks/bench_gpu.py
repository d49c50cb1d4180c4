"""DRUM on real-size models on one GPU, each number beside the plain ``transformers`` loop.

Architectures of real size with random weights, built from config directly on the device in
bf16 (``gpu_models.py``: CLIP ViT-L/14, SigLIP so400m, LLaVA-1.5-7B, Qwen2.5-VL-7B, BLIP-2
with a Vicuna-7B), timed four ways, DRUM and the baseline alternated round by round in one
process (the best round of each is kept):

- **embed** (CLIP, SigLIP): images/s of ``HFDualEncoder.embed_images`` vs the model card's
  loop (the processor on PIL images, ``get_image_features``, normalised), same batch size,
  same PNG files;
- **score** (LLaVA, Qwen): feedback scoring, ``score_feedback`` (batched, image encodings
  shared) over ``--queries`` queries x ``--candidates`` candidates drawn from a pool of
  ``--pool`` examples (candidates recur across queries, as retrieved demonstrations do), vs
  a naive loop over the same prompts, one ``model(**processor(...))`` per prompt: prompts/s,
  tokens/s and model FLOP utilisation; the two sides' s(c) are compared
  (``max_abs_difference``);
- **generate** (LLaVA, Qwen): new tokens/s of ``HFLVLM.generate`` (batched, left-padded) vs
  one ``model.generate`` per prompt (greedy, exactly ``--new-tokens`` tokens a prompt: the
  generation config's ``min_new_tokens`` keeps random weights from stopping early);
- **train** (BLIP-2): one VPG-C training step (``VPGCLVLM.loss``, backward, AdamW on the
  adapter) vs one plain step of the same frozen model tuning its own 32 query tokens (the
  model's ``labels`` loss on the same prompts): seconds a step, peak device memory
  (``torch.cuda.max_memory_allocated``, weights included) and the activations saved for the
  backward pass (``saved_activation_gib``: unique storages saved by autograd, parameters
  excepted, measured on any device).

``speedup`` is the baseline's time over DRUM's for the same work (> 1: DRUM faster).
Model FLOPs: 2 x parameters per token forward (the attention's context-length term, about
4 x layers x context x width a token, left out: ~2% for Llama-7B at 1,200 tokens), counted per
side as ``2 N_lm T + 2 N_vision V``: ``N_lm`` the language model's parameters without the
input embedding table, ``T`` the tokens of the prompts (and new tokens) without padding,
``N_vision`` the vision tower's parameters and ``V`` the tokens that side actually ran through
it (counted by a hook; DRUM encodes a recurring image once). MFU = achieved FLOP/s over the
card's dense bf16 peak (``gpu_measure.PEAK_BF16_TFLOPS``, by device name; ``--peak-tflops``
overrides; none on the CPU).

Budget on one H100 (80 GB), about 8 minutes in all, estimated: imports and images ~30 s;
CLIP and SigLIP ~20 s each; LLaVA and Qwen ~100 s each (building ~20 s; scoring 72 prompts
and generating 8 x 32 tokens, a warm-up and 2 timed rounds a side); BLIP-2 ~60 s (6 steps a
side: warm-up, saved activations, peak memory, 3 timed). ``meta.part_seconds`` records what
each part took; ``--parts`` runs a subset. A part that fails is recorded in
``meta.failures`` and the others still run (exit status 1).

``--smoke`` (``--quick``, what ``benchmarks/run.py --quick`` passes): tiny configs of the same
architectures, float32 on the CPU, a few prompts, one round (the test suite runs it).

Usage: ``python benchmarks/bench_gpu.py [--smoke] [--parts clip llava ...]``.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from common import report
from gpu_measure import GIB, Device, alternate, mfu, peak_tflops, release, saved_activations
from gpu_models import (
    NAMES,
    Built,
    build,
    language_parameters,
    make_images,
    parameters,
    prebuilt,
)

from drum.data.example import Example
from drum.lvlm.prompt import ICLPrompt, build_prompt

EMBEDDERS = ("clip", "siglip")
# Exit status of a full run without CUDA: ``run.py`` reports it skipped, not failed.
SKIPPED = 77
# What the full run should take on one H100, model building included (module docstring).
BUDGET_SECONDS = 480
# The per-side numbers of the table beside DRUM's and the baseline's rate.
SIDE_COLUMNS = (
    "drum_tokens_s",
    "baseline_tokens_s",
    "drum_mfu",
    "baseline_mfu",
    "drum_peak_gib",
    "baseline_peak_gib",
)


def rates(work: float, seconds: dict[str, float]) -> tuple[float, float]:
    """(DRUM's rate, the baseline's rate) of ``work`` items."""
    return work / seconds["drum"], work / seconds["baseline"]


def row(case: str, built: Built, unit: str, drum: float, baseline: float, **extra: Any) -> dict:
    """A table row with every column: ``extra`` fills ``SIDE_COLUMNS`` (None where a case has
    no such number)."""
    speedup = baseline / drum if unit == "s/step" else drum / baseline  # baseline time / DRUM's
    return {
        "case": case,
        "model": built.title,
        "unit": unit,
        "drum": drum,
        "baseline": baseline,
        "speedup": speedup,
        **{column: extra.get(column) for column in SIDE_COLUMNS},
    }


# --------------------------------------------------------------------------------- workloads
def examples(paths: Sequence[Path], prefix: str, seed: int) -> list[Example]:
    """One VQA example per image: a question of 8-12 world words, a one-word answer."""
    from drum.builtin.world.language import vocabulary

    words = sorted(vocabulary())
    rng = np.random.default_rng(seed)
    return [
        Example(
            id=f"{prefix}{i}",
            images=(path,),
            text=" ".join(rng.choice(words, size=int(rng.integers(8, 13)))),
            answers=(str(rng.choice(words)),),
            task="vqa",
        )
        for i, path in enumerate(paths)
    ]


def plain_inputs(lvlm: Any, texts: list[str], prompts: Sequence[ICLPrompt]) -> dict:
    """The processor's batch for ``texts`` (rendered prompts, maybe with answers) and the
    prompts' images, on the device; Qwen's M-RoPE image mask as its processor makes it."""
    from PIL import Image

    images = [[Image.open(p).convert("RGB") for p in prompt.images] for prompt in prompts]
    batch = lvlm.processor(text=texts, images=images, return_tensors="pt", padding=True)
    inputs = {k: v.to(lvlm.device) for k, v in batch.items() if isinstance(v, torch.Tensor)}
    if lvlm.model_type.startswith("qwen"):
        inputs["mm_token_type_ids"] = (inputs["input_ids"] == lvlm.image_token_id).int()
    return inputs


def render(lvlm: Any, prompt: ICLPrompt) -> str:
    return lvlm.processor.apply_chat_template(
        prompt.to_messages(), add_generation_prompt=True, tokenize=False
    )


# ------------------------------------------------------------------------------------- parts
def bench_embedder(built: Built, args: argparse.Namespace, device: Device, work: Path) -> dict:
    from transformers import AutoModel, AutoProcessor

    from drum.embed.hf import HFDualEncoder

    paths = make_images(work / "images", args.images, built.image_size)
    with prebuilt(AutoModel, built.model):
        embedder = HFDualEncoder(built.directory, device=device.name, dtype=device.dtype)
    processor = AutoProcessor.from_pretrained(built.directory)

    @torch.inference_mode()
    def plain() -> np.ndarray:
        from PIL import Image

        chunks = []
        for start in range(0, len(paths), args.embed_batch):
            batch = [Image.open(p).convert("RGB") for p in paths[start : start + args.embed_batch]]
            pixels = processor(images=batch, return_tensors="pt")["pixel_values"]
            out = built.model.get_image_features(pixel_values=pixels.to(device.name, device.dtype))
            out = out if isinstance(out, torch.Tensor) else out.pooler_output
            chunks.append(torch.nn.functional.normalize(out.float(), dim=-1).cpu().numpy())
        return np.concatenate(chunks)

    sides = {
        "drum": lambda: embedder.embed_images(paths, batch_size=args.embed_batch),
        "baseline": plain,
    }
    timing = alternate(args.rounds, sides, device, built)
    flops = {
        name: 2 * parameters(built.vision_tower) * count
        for name, count in timing["vision_tokens"].items()
    }
    drum, base = rates(len(paths), timing["seconds"])
    results = timing["results"]
    return {
        "row": row(
            "embed",
            built,
            "images/s",
            drum,
            base,
            drum_mfu=mfu(flops["drum"], timing["seconds"]["drum"], device),
            baseline_mfu=mfu(flops["baseline"], timing["seconds"]["baseline"], device),
        ),
        "detail": {
            "images": len(paths),
            "batch_size": args.embed_batch,
            "seconds": timing["seconds"],
            "vision_tokens_per_image": built.tokens_per_image,
            "model_tflop": {name: value / 1e12 for name, value in flops.items()},
            "max_abs_difference": float(np.abs(results["drum"] - results["baseline"]).max()),
        },
    }


def load_lvlm(built: Built, device: Device) -> Any:
    from transformers import AutoModelForImageTextToText

    from drum.lvlm.hf import HFLVLM

    with prebuilt(AutoModelForImageTextToText, built.model):
        return HFLVLM(built.directory, device=device.name, dtype=device.dtype)


def feedback_workload(
    built: Built, args: argparse.Namespace, work: Path
) -> tuple[list[Example], dict[str, list[Example]]]:
    """``--queries`` queries, each with ``--candidates`` distinct candidates drawn from a pool
    of ``--pool`` examples (seeded)."""
    paths = make_images(work / "images", args.queries + args.pool, built.image_size)
    queries = examples(paths[: args.queries], "q", seed=1)
    pool = examples(paths[args.queries :], "p", seed=2)
    rng = np.random.default_rng(3)
    picks = {q.id: rng.choice(len(pool), size=args.candidates, replace=False) for q in queries}
    return queries, {q.id: [pool[int(i)] for i in picks[q.id]] for q in queries}


def bench_score(
    built: Built, lvlm: Any, args: argparse.Namespace, device: Device, work: Path
) -> dict:
    from drum.feedback import FeedbackCache, FeedbackConfig, score_feedback

    queries, candidates = feedback_workload(built, args, work)
    jobs = [(q, c) for q in queries for c in (None, *candidates[q.id])]
    prompts = [build_prompt([] if c is None else [c], q) for q, c in jobs]
    config = FeedbackConfig(candidates=args.candidates, batch_size=args.score_batch)
    runs = itertools.count()
    answer_lengths = {
        q.id: len(lvlm.tokenizer(q.answer, add_special_tokens=False)["input_ids"]) for q in queries
    }
    tokens: list[int] = []  # tokens of each prompt + answer (no padding), from the plain side

    def drum_side() -> dict[tuple[str, str], float]:
        lvlm.feature_cache.clear()  # every round encodes its images again
        cache = FeedbackCache(work / f"feedback-{next(runs)}.jsonl")
        feedback = score_feedback(lvlm, queries, candidates, cache, config, progress=False)
        return {
            (f.query_id, c): s
            for f in feedback
            for c, s in zip(f.candidate_ids, f.scores, strict=True)
        }

    @torch.inference_mode()
    def plain_side() -> dict[tuple[str, str], float]:
        tokens.clear()
        means: dict[tuple[str, str | None], float] = {}
        for (query, candidate), prompt in zip(jobs, prompts, strict=True):
            inputs = plain_inputs(lvlm, [render(lvlm, prompt) + " " + query.answer], [prompt])
            logits = built.model(**inputs).logits[0]
            n = answer_lengths[query.id]
            ids = inputs["input_ids"][0]
            picked = torch.log_softmax(logits[-n - 1 : -1].float(), -1).gather(1, ids[-n:, None])
            means[(query.id, None if candidate is None else candidate.id)] = picked.sum().item() / n
            tokens.append(int(ids.shape[0]))
        return {
            (q.id, c.id): means[(q.id, c.id)] - means[(q.id, None)]
            for q in queries
            for c in candidates[q.id]
        }

    timing = alternate(args.rounds, {"drum": drum_side, "baseline": plain_side}, device, built)
    counts = timing["vision_tokens"]
    language = 2 * language_parameters(built) * sum(tokens)
    vision = 2 * parameters(built.vision_tower)
    flops = {name: language + vision * counts[name] for name in counts}
    seconds = timing["seconds"]
    drum, base = rates(len(prompts), seconds)
    results = timing["results"]
    return {
        "row": row(
            "score",
            built,
            "prompts/s",
            drum,
            base,
            drum_tokens_s=sum(tokens) / seconds["drum"],
            baseline_tokens_s=sum(tokens) / seconds["baseline"],
            drum_mfu=mfu(flops["drum"], seconds["drum"], device),
            baseline_mfu=mfu(flops["baseline"], seconds["baseline"], device),
        ),
        "detail": {
            "queries": len(queries),
            "candidates": args.candidates,
            "pool": args.pool,
            "prompts": len(prompts),
            "batch_size": args.score_batch,
            "tokens": sum(tokens),
            "visual_tokens_per_image": built.visual_tokens,
            "vision_tokens": counts,
            "seconds": seconds,
            "model_tflop": {name: value / 1e12 for name, value in flops.items()},
            "max_abs_difference": max(
                abs(results["drum"][key] - results["baseline"][key]) for key in results["drum"]
            ),
        },
    }


def bench_generate(
    built: Built, lvlm: Any, args: argparse.Namespace, device: Device, work: Path
) -> dict:
    queries, candidates = feedback_workload(built, args, work)
    prompts = [build_prompt(candidates[q.id][:1], q) for q in queries][: args.gen_prompts]
    prompts = (prompts * args.gen_prompts)[: args.gen_prompts]
    new = args.new_tokens
    # Exactly ``new`` tokens a prompt on both sides: random weights could emit EOS any time.
    built.model.generation_config.min_new_tokens = new
    prompt_tokens: list[int] = []

    @torch.inference_mode()
    def plain_side() -> list[int]:
        prompt_tokens.clear()
        lengths = []
        for prompt in prompts:
            inputs = plain_inputs(lvlm, [render(lvlm, prompt)], [prompt])
            output = built.model.generate(**inputs, max_new_tokens=new, do_sample=False)
            prompt_tokens.append(int(inputs["input_ids"].shape[1]))
            lengths.append(int(output.shape[1]) - prompt_tokens[-1])
        return lengths

    sides = {
        "drum": lambda: lvlm.generate(prompts, max_new_tokens=new, batch_size=args.gen_batch),
        "baseline": plain_side,
    }
    timing = alternate(args.rounds, sides, device, built)
    generated = sum(timing["results"]["baseline"])
    if generated != new * len(prompts):
        sys.exit(f"bench_gpu: the plain loop generated {generated} tokens, not {new} a prompt")
    language = 2 * language_parameters(built) * (sum(prompt_tokens) + generated)
    vision = 2 * parameters(built.vision_tower)
    flops = {name: language + vision * n for name, n in timing["vision_tokens"].items()}
    seconds = timing["seconds"]
    drum, base = rates(generated, seconds)
    return {
        "row": row(
            "generate",
            built,
            "new tokens/s",
            drum,
            base,
            drum_mfu=mfu(flops["drum"], seconds["drum"], device),
            baseline_mfu=mfu(flops["baseline"], seconds["baseline"], device),
        ),
        "detail": {
            "prompts": len(prompts),
            "new_tokens": new,
            "batch_size": args.gen_batch,
            "prompt_tokens": sum(prompt_tokens),
            "seconds": seconds,
            "vision_tokens": timing["vision_tokens"],
            "model_tflop": {name: value / 1e12 for name, value in flops.items()},
        },
    }


def bench_train(built: Built, args: argparse.Namespace, device: Device, work: Path) -> dict:
    from drum.adapters.vpgc import VPGCLVLM, VPGCConfig

    lvlm = load_lvlm(built, device)
    vpgc = VPGCLVLM(lvlm, VPGCConfig())  # the base frozen; the layer L/2
    queries, candidates = feedback_workload(built, args, work)
    prompts = [build_prompt(candidates[q.id][:1], q) for q in queries][: args.train_batch]
    answers = [q.answer for q in queries][: args.train_batch]
    adapter_optimizer = torch.optim.AdamW(vpgc.trainable_parameters(), lr=1e-4)
    queries_param = built.model.query_tokens
    plain_optimizer = torch.optim.AdamW([queries_param], lr=1e-4)
    eos = lvlm.tokenizer.eos_token
    n_answer = [len(lvlm.tokenizer(a, add_special_tokens=False)["input_ids"]) + 1 for a in answers]

    def drum_step() -> float:
        loss = vpgc.loss(prompts, answers, add_eos=True)
        loss.backward()
        adapter_optimizer.step()
        adapter_optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def plain_step() -> float:
        queries_param.requires_grad_(True)
        texts = [f"{render(lvlm, p)} {a} {eos}" for p, a in zip(prompts, answers, strict=True)]
        inputs = plain_inputs(lvlm, texts, prompts)
        labels = torch.full_like(inputs["input_ids"], -100)
        for row, n in enumerate(n_answer):
            length = int(inputs["attention_mask"][row].sum())
            labels[row, length - n : length] = inputs["input_ids"][row, length - n : length]
        loss = built.model(**inputs, labels=labels).loss
        loss.backward()
        plain_optimizer.step()
        plain_optimizer.zero_grad(set_to_none=True)
        queries_param.requires_grad_(False)
        return loss.item()

    steps = {"drum": drum_step, "baseline": plain_step}
    detail: dict[str, Any] = {"batch": len(prompts), "steps": args.steps}
    for name, step in steps.items():
        step()  # warm-up (and the optimizer's state)
        with saved_activations(built.model) as saved:
            step()
        detail[f"{name}_saved_activation_gib"] = sum(saved.values()) / GIB
        before, peak = device.peak_memory(step)
        detail[f"{name}_allocated_before_gib"], detail[f"{name}_peak_gib"] = before, peak
    for name in steps:
        detail[f"{name}_seconds"] = float("inf")
    for _ in range(args.steps):  # timed steps alternated, the best of each kept
        for name, step in steps.items():
            seconds = device.timed(step)[0]
            detail[f"{name}_seconds"] = min(detail[f"{name}_seconds"], seconds)
    count = vpgc.parameter_count()
    detail["adapter_parameters"] = count.adapter
    detail["baseline_trained_parameters"] = queries_param.numel()
    return {
        "row": row(
            "VPG-C train step",
            built,
            "s/step",
            detail["drum_seconds"],
            detail["baseline_seconds"],
            drum_peak_gib=detail["drum_peak_gib"],
            baseline_peak_gib=detail["baseline_peak_gib"],
        ),
        "detail": detail,
    }


# --------------------------------------------------------------------------------------- main
def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", "--quick", action="store_true", help="tiny configs, CPU")
    parser.add_argument("--parts", nargs="+", choices=NAMES, default=list(NAMES))
    parser.add_argument("--device", help="default: cuda (the CPU with --smoke)")
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), help="bf16 (smoke: fp32)")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak, for MFU")
    parser.add_argument("--rounds", type=int, help="timed rounds a side (2; smoke 1)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    sizes = {  # (full, smoke)
        "images": (256, 8),
        "embed_batch": (64, 4),
        "queries": (8, 2),
        "candidates": (8, 2),
        "pool": (16, 3),
        "score_batch": (16, 4),
        "gen_prompts": (8, 2),
        "new_tokens": (32, 3),
        "gen_batch": (8, 2),
        "train_batch": (4, 2),
        "steps": (3, 1),
    }
    for name, (full, tiny) in sizes.items():
        setattr(args, name, tiny if smoke else full)
    args.rounds = args.rounds or (1 if smoke else 2)
    args.device = args.device or ("cpu" if smoke else "cuda")
    args.dtype = args.dtype or ("float32" if smoke else "bfloat16")
    return args


def run_part(
    name: str, args: argparse.Namespace, device: Device, work: Path
) -> tuple[dict[str, Any], list[dict]]:
    """Build architecture ``name`` and time its cases: its description and parameter counts,
    and one ``{"row", "detail"}`` a case. The model is freed on return."""
    started = time.perf_counter()
    built = build(name, args.smoke, device.name, device.dtype, work / "model")
    model = {
        "description": built.description,
        "build_seconds": time.perf_counter() - started,
        "parameters": parameters(built.model),
        "vision_tower_parameters": parameters(built.vision_tower),
        "language_parameters": None if name in EMBEDDERS else language_parameters(built),
    }
    if name in EMBEDDERS:
        return model, [bench_embedder(built, args, device, work)]
    if name == "blip2":
        return model, [bench_train(built, args, device, work)]
    lvlm = load_lvlm(built, device)
    return model, [
        bench_score(built, lvlm, args, device, work),
        bench_generate(built, lvlm, args, device, work),
    ]


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "bench_gpu: skipped, no CUDA device (--smoke: tiny configs on the CPU)", file=sys.stderr
        )
        sys.exit(SKIPPED)
    cuda = args.device.startswith("cuda")
    card = torch.cuda.get_device_name() if cuda else "cpu"
    peak = args.peak_tflops or (peak_tflops(card) if cuda else None)
    device = Device(args.device, getattr(torch, args.dtype), peak)
    rows: list[dict] = []
    details: dict[str, Any] = {}
    part_seconds: dict[str, float] = {}
    models: dict[str, dict] = {}
    failures: dict[str, str] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench_gpu-") as tmp:
        work = Path(tmp)
        for name in args.parts:
            part_start = time.perf_counter()
            try:
                models[name], results = run_part(name, args, device, work / name)
            except Exception as error:  # the other parts still run and report
                traceback.print_exc()
                failures[name] = f"{type(error).__name__}: {error}"
                results = []
            release()  # the model's memory back before the next one is built
            for result in results:
                rows.append(result["row"])
                details[f"{result['row']['case']}:{name}"] = result["detail"]
            part_seconds[name] = time.perf_counter() - part_start
    meta = {
        "smoke": args.smoke,
        "device": card,
        "dtype": str(device.dtype),
        "peak_tflops": peak,
        "peak_source": "--peak-tflops" if args.peak_tflops else "gpu_measure.PEAK_BF16_TFLOPS",
        "flops_formula": "2 x N_lm x T + 2 x N_vision x V (forward, attention term left out)",
        "speedup": "baseline seconds / DRUM seconds for the same work",
        "models": models,
        "part_seconds": part_seconds,
        "total_seconds": time.perf_counter() - started,
        "budget_seconds": None if args.smoke else BUDGET_SECONDS,
        "sizes": {k: v for k, v in vars(args).items() if k not in ("parts", "smoke")},
        "failures": failures,
        "details": details,
    }
    report("gpu_smoke" if args.smoke else "gpu", rows, meta)
    if failures:
        sys.exit(f"bench_gpu: {len(failures)} part(s) failed: {', '.join(failures)}")


if __name__ == "__main__":
    main()
