"""Why VPG-C does or does not help on the built-in BLIP-2: three diagnostics.

Run on the held-out test tasks whose prompts hold one image (their scenes' ground truth is
in each task's ``meta.jsonl``), for the base and for the base with a trained adapter:

* **Is the detail in the visual tokens?** The hidden states of the image's query tokens at
  the input of VPG-C's layer (where its residual has just been added), flattened; a linear
  probe of the small object's colour (half the samples to fit, half to score), without and
  with the residual, on questions about the small object and on questions about the big one.
* **Does the residual follow the instruction?** Per task, the mean norm of the residual
  (hidden with the adapter minus hidden without, over the image's query tokens) relative to
  the hidden state's norm.
* **Where does VPG-C look?** The share of its Q-Former cross-attention (its queries, mean over
  layers, heads, queries, CLS dropped) on the small object's patches, beside the base
  queries' share and the patches' area share, on small-object questions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from drum.builtin.blip2.data import read_meta
from drum.builtin.blip2.diagnostics import probe_accuracy
from drum.builtin.blip2.scenes import COLOURS, TwoObjectScene, small_object_patches
from drum.demon.prompt import demon_prompt
from drum.lvlm.hooks import decoder_layers

SMALL_QUESTIONS = ("small_colour", "small_shape", "dialogue")
BIG_QUESTIONS = ("caption", "big_colour", "big_shape")


@contextmanager
def _layer_inputs(model: torch.nn.Module, layer: int, store: list[torch.Tensor]) -> Iterator[None]:
    def capture(module: Any, args: Any, kwargs: Any) -> None:
        store.append((args[0] if args else kwargs["hidden_states"]).detach())

    handle = decoder_layers(model)[layer].register_forward_pre_hook(capture, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@torch.no_grad()
def visual_states(lvlm: Any, base: Any, prompts: Sequence[Any], layer: int) -> torch.Tensor:
    """``(N, Q, D)``: the first image's query-token states at the input of decoder ``layer``,
    one prompt at a time, through ``lvlm`` (the base or the base with an adapter)."""
    image_id = base.model.config.image_token_index
    states = []
    for prompt in prompts:
        store: list[torch.Tensor] = []
        inputs = base.score_inputs([prompt], [[]], positions=True)
        with _layer_inputs(base.model, layer, store):
            if hasattr(lvlm, "active"):  # a VPGCLVLM: its hooks act inside active()
                with lvlm.active():
                    base.forward(inputs.input_ids, inputs.attention_mask, inputs.visual,
                                 **inputs.extra)  # fmt: skip
            else:
                base.forward(inputs.input_ids, inputs.attention_mask, inputs.visual, **inputs.extra)
        positions = (inputs.input_ids[0] == image_id).nonzero().flatten()
        count = base.model.config.num_query_tokens
        states.append(store[0][0, positions[:count]].float().cpu())
    return torch.stack(states)


@torch.no_grad()
def vpgc_attention_share(adapter_lvlm: Any, prompts: Sequence[Any], scenes: list[Any]) -> float:
    """Mean share of the adapter's Q-Former cross-attention on the small object's patches."""
    from drum.lvlm.attention import eager_attention

    layer = adapter_lvlm.adapter
    records: list[torch.Tensor] = []
    qformer = layer._qformer[0]
    original = qformer.forward

    def recording(*args: Any, **kwargs: Any) -> Any:
        output = original(*args, **{**kwargs, "output_attentions": True})
        records.append(
            torch.stack([a.float() for a in output.cross_attentions]).mean(dim=(0, 2, 3))
        )
        return output

    shares = []
    qformer.forward = recording
    try:
        with eager_attention(adapter_lvlm.base.model):
            for prompt, scene in zip(prompts, scenes, strict=True):
                records.clear()
                adapter_lvlm.score([prompt], [scene.small_colour])
                # The base's own Q-Former pass (its image features) runs first; the adapter's,
                # inside the language model's pass, last.
                assert len(records) == 2, len(records)
                weights = records[-1][0, 1:]
                weights = weights / weights.sum()
                mask = torch.from_numpy(small_object_patches(scene)).float()
                shares.append(float((weights * mask).sum()))
    finally:
        qformer.forward = original
    return float(np.mean(shares))


def bottleneck_diagnostics(
    base_dir: Path, adapter_dir: Path, tasks: Sequence[Any], limit: int = 300
) -> dict[str, Any]:
    """The three diagnostics (module docstring) of the adapter in ``adapter_dir``."""
    from drum.adapters import load_adapter
    from drum.lvlm.attention import qformer_cross_attention
    from drum.lvlm.hf import HFLVLM

    base = HFLVLM(base_dir)
    adapted = load_adapter(HFLVLM(base_dir), adapter_dir)
    layer = adapted.config.layer
    by_name = {task.name: task for task in tasks}
    results: dict[str, Any] = {"layer": layer, "residual_norm": {}, "probe": {}}
    collected: dict[str, tuple[list, list, list]] = {}
    for name in (*SMALL_QUESTIONS, *BIG_QUESTIONS):
        task = by_name[name]
        metas = read_meta(Path(task.samples[0].images[0]).parent.parent.parent)
        samples = task.samples[:limit]
        prompts = [demon_prompt(task, s) for s in samples]
        scenes = [TwoObjectScene.from_meta(metas[i]["scenes"][0]) for i in range(len(samples))]
        without = visual_states(base, base, prompts, layer)
        with_residual = visual_states(adapted, adapted.base, prompts, layer)
        residual = (with_residual - without).flatten(1).norm(dim=1)
        results["residual_norm"][name] = float((residual / without.flatten(1).norm(dim=1)).mean())
        collected[name] = (prompts, scenes, [without, with_residual])
    for label, names in (("small-object questions", SMALL_QUESTIONS),
                         ("big-object questions", BIG_QUESTIONS)):  # fmt: skip
        y = np.array([COLOURS.index(s.small_colour) for n in names for s in collected[n][1]])
        entry = {}
        for index, which in enumerate(("without residual", "with residual")):
            x = torch.cat([collected[n][2][index] for n in names]).flatten(1).numpy()
            order = np.random.default_rng(0).permutation(len(x))
            entry[which] = probe_accuracy(x[order], y[order])
        results["probe"][label] = entry
    prompts, scenes, _ = collected["small_colour"]
    masks = torch.from_numpy(np.stack([small_object_patches(s) for s in scenes])).float()
    pixels = base.score_inputs(prompts[:64], [[] for _ in prompts[:64]]).extra["pixel_values"]
    base_weights = qformer_cross_attention(base.model, pixels)[:, 1:]
    base_weights = base_weights / base_weights.sum(1, keepdim=True)
    results["attention_on_small_object"] = {
        "vpgc_queries": vpgc_attention_share(adapted, prompts[:64], scenes[:64]),
        "base_queries": float((base_weights * masks[:64]).sum(1).mean()),
        "area": float(masks.mean()),
    }
    return results
