"""Synthetic discriminative training of VPG-C (``drum.adapters.vpgc.data``), and two baselines
that spend the same data without the module.

``train_vpgc(base_dir, out_dir, config)``:

1. writes the synthetic tasks (``make_synthetic_vpgc``; the base's attention chooses the edited
   regions unless ``region="random"``) into ``data_dir`` (default: ``<out_dir>.data`` beside
   ``out_dir``), reused when its card holds the same data config and base;
2. trains with the LM loss on each response and ``[EOS]`` (``add_eos=True``) after its
   ``demon_prompt``, encoded exactly as evaluation encodes it; every step draws
   ``batch_size`` samples uniformly over all tasks' samples; AdamW under warmup-cosine,
   gradients clipped to norm 1;
3. checkpoints (``Checkpointer``: the trained parameters, optimizer, scheduler and every RNG)
   every ``checkpoint_every`` steps, so a killed run resumes and ends with the same weights;
4. writes ``out_dir`` atomically with the card ``vpgc_train.json`` (identity, steps, seconds,
   steps/s, parameter count and share of the base, loss history).

``method``:

* ``"vpgc"``: the VPG-C adapter alone (the base frozen); ``out_dir`` is an adapter directory
  (``adapter_config.json`` + ``adapter_model.safetensors``) for ``load_adapter``;
* ``"projector"``: the base's ``multi_modal_projector`` alone; ``out_dir`` is a full model
  directory (model + processor) for ``HFLVLM``;
* ``"lora"``: ``peft``'s LoRA (``B`` zero-init, ``alpha = r``) on the query and value
  projections of every LLM layer, rank chosen so its parameter count is the closest to the
  VPG-C adapter's; merged into the weights at the end (``merge_and_unload``), so ``out_dir`` is
  a full model directory too (the evaluation is plain ``HFLVLM``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from drum.adapters.vpgc.config import VPGCConfig
from drum.adapters.vpgc.data import CARD_NAME as DATA_CARD
from drum.adapters.vpgc.data import REGIONS, SyntheticVPGCConfig, make_synthetic_vpgc
from drum.adapters.vpgc.episodes import CARD_NAME as EPISODES_CARD
from drum.adapters.vpgc.episodes import (
    TwinEpisodeConfig,
    episodes_digest,
    load_twin_samples,
    make_twin_episodes,
)
from drum.adapters.vpgc.model import VPGCLVLM
from drum.adapters.vpgc.photos import PhotoVPGCConfig, default_source, photo_training_data
from drum.demon.format import read_demon_task
from drum.demon.prompt import demon_prompt
from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import decoder_layers
from drum.lvlm.prompt import ICLPrompt
from drum.utils.checkpoint import Checkpointer
from drum.utils.fingerprint import directory_digest
from drum.utils.schedule import adamw_warmup_cosine, clipped_step
from drum.utils.seed import seed_everything

TRAIN_CARD = "vpgc_train.json"
METHODS = ("vpgc", "projector", "lora")
# What the synthetic data is (``VPGCTrainConfig.source``).
SOURCES = ("auto", "world", "photos", "episodes")
LORA_TARGETS = ("q_proj", "v_proj")


@dataclass(frozen=True)
class VPGCTrainConfig:
    """One synthetic training run.

    Attributes:
        method: ``"vpgc"`` (the adapter), ``"projector"`` or ``"lora"`` (baselines).
        layer: VPG-C's layer (``None``: ``L // 2``).
        num_heads: VPG-C's re-attention heads.
        hidden_size: VPG-C's re-attention width on projector-style bases (``None``: the vision
            width; a BLIP-2 base always uses its Q-Former's). 16 keeps the adapter at 0.53%
            of the built-in base's parameters (the vision width, 64, would make it 4.0%; the
            issue's budget is 1%).
        lr, weight_decay, warmup: AdamW under warmup-cosine (``warmup`` steps).
        batch_size: samples per step.
        max_steps: steps (the cosine's length); ``max_seconds`` stops earlier.
        seed: the data, the adapter's initial weights and the sample draws.
        region: ``"attention"`` (least-attended patch) or ``"random"`` (the ablation).
        n_train: synthetic samples per task (four tasks); ``source="episodes"``: episodes.
        checkpoint_every: steps between checkpoints.
        log_every: steps per loss-history entry.
        source: the synthetic data's images (``SOURCES``): ``"world"`` (the built-in world's
            32 px scenes, ``drum.adapters.vpgc.data``), ``"photos"`` (edited scikit-image
            photos at the base's image size, ``drum.adapters.vpgc.photos``) or ``"auto"``
            (world for a base whose tower reads 32 px images, the built-in LVLM; photos for
            any other, ``photos.default_source``).
    """

    method: str = "vpgc"
    layer: int | None = None
    num_heads: int = 2
    hidden_size: int | None = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 16
    max_steps: int = 1500
    max_seconds: float = 300.0
    warmup: int = 20
    seed: int = 0
    region: str = "attention"
    n_train: int = 500
    checkpoint_every: int = 250
    log_every: int = 25
    source: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {self.region!r}")
        for name in ("batch_size", "max_steps", "n_train", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.max_seconds <= 0:
            raise ValueError("lr and max_seconds must be > 0")
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")

    def data_config(self) -> SyntheticVPGCConfig:
        """The world data's config (``source="world"``)."""
        return SyntheticVPGCConfig(n_train=self.n_train, seed=self.seed, region=self.region)


# ---------------------------------------------------------------------------------- the loss
def answer_loss(
    lvlm: HFLVLM, prompts: Sequence[ICLPrompt], answers: Sequence[str], add_eos: bool = True
) -> torch.Tensor:
    """``VPGCLVLM.loss`` for a plain ``HFLVLM`` (the baselines): mean cross-entropy over the
    answer tokens (and EOS), the prompts encoded as ``score`` encodes them, with gradients
    into whichever parameters require them (the feature cache bypassed)."""
    eos = [lvlm.tokenizer.eos_token_id] if add_eos else []
    answer_ids = [lvlm._answer_ids(answer) + eos for answer in answers]
    with lvlm.feature_cache_bypassed(), torch.enable_grad():
        inputs = lvlm.score_inputs(prompts, answer_ids, positions=False)
        logits = lvlm.forward(inputs.input_ids, inputs.attention_mask, None, **inputs.extra).logits
    rows, positions, targets = inputs.answer_index(logits.device)
    return nn.functional.cross_entropy(logits[rows, positions].float(), targets)


# ---------------------------------------------------------------------------------- LoRA
def lora_rank_for(model: nn.Module, target: int) -> int:
    """The LoRA rank whose parameter count (``LORA_TARGETS`` of every decoder layer) is the
    closest to ``target`` (at least 1)."""
    per_rank = 0
    for layer in decoder_layers(model):
        for name in LORA_TARGETS:
            linear = getattr(layer.self_attn, name)
            per_rank += linear.in_features + linear.out_features
    return max(1, round(target / per_rank))


def lora_target_names(model: nn.Module) -> list[str]:
    """Full module names of ``LORA_TARGETS`` in the language model's decoder layers (the vision
    tower's attention has the same short names and stays untouched)."""
    layers = decoder_layers(model)
    wanted = {id(getattr(layer.self_attn, name)) for layer in layers for name in LORA_TARGETS}
    return [name for name, module in model.named_modules() if id(module) in wanted]


def add_lora(model: nn.Module, rank: int, seed: int) -> nn.Module:
    """peft LoRA (``r = alpha = rank``, ``B`` zero-init, no dropout) on ``LORA_TARGETS`` of every
    decoder layer, injected into ``model`` in place; returns the ``PeftModel`` (only its LoRA
    weights require grad)."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)  # peft draws A from the global generator
    config = LoraConfig(
        r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=lora_target_names(model)
    )
    return get_peft_model(model, config)


# ------------------------------------------------------------------------------- the trainer
def _card_matches(card_path: Path, expected: dict[str, object]) -> bool:
    if not card_path.is_file():
        return False
    card = json.loads(card_path.read_text(encoding="utf-8"))
    return {k: card.get(k) for k in expected} == expected


def _samples(
    base: HFLVLM, data_dir: Path, config: VPGCTrainConfig, source: str
) -> tuple[list[tuple[ICLPrompt, str]], str]:
    """The training ``(prompt, response)`` pairs of ``source`` (``"auto"`` resolved) and a
    digest of what they read: the data in ``data_dir``, reused when its card holds the same
    data config and base, else written."""
    if source == "episodes":
        episodes = TwinEpisodeConfig(n_train=config.n_train, seed=config.seed, region=config.region)
        expected = {"config": asdict(episodes), "base": base.fingerprint}
        if not _card_matches(data_dir / EPISODES_CARD, expected):
            make_twin_episodes(data_dir, episodes, base)
        return load_twin_samples(data_dir), episodes_digest(data_dir)
    if source == "photos":
        photos = PhotoVPGCConfig(n_train=config.n_train, seed=config.seed, region=config.region)
        folders = photo_training_data(base, data_dir, photos)
    else:
        data_config = config.data_config()
        expected = {"config": asdict(data_config), "base": base.fingerprint}
        if not _card_matches(data_dir / DATA_CARD, expected):
            make_synthetic_vpgc(data_dir, data_config, base)
        folders = sorted(p for p in (data_dir / "train").iterdir() if p.is_dir())
    from drum.builtin.demon.lvlm import tasks_digest  # the DEMON base's trainer, lazily

    tasks = [read_demon_task(folder) for folder in folders]
    samples = [(demon_prompt(t, s), str(s.response)) for t in tasks for s in t.samples]
    return samples, tasks_digest(tasks)


def train_vpgc(
    base_dir: str | Path,
    out_dir: str | Path,
    config: VPGCTrainConfig | None = None,
    *,
    data_dir: str | Path | None = None,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Path:
    """Train ``config.method`` on the synthetic tasks over the base in ``base_dir`` and write
    ``out_dir`` (module docstring); a finished ``out_dir`` of the same run is returned as is,
    an interrupted one resumes from its checkpoint. ``on_step(step)`` runs after each step.

    Example::

        train_vpgc("drum/assets/demon_base/model", "runs/vpgc/adapter", VPGCTrainConfig())
        model = load_adapter(HFLVLM("drum/assets/demon_base/model"), "runs/vpgc/adapter")
    """
    config = config or VPGCTrainConfig()
    base_dir, out_dir = Path(base_dir), Path(out_dir)
    data_dir = Path(data_dir) if data_dir is not None else out_dir.parent / f"{out_dir.name}.data"
    seed_everything(config.seed)
    base = HFLVLM(base_dir)
    for parameter in base.model.parameters():
        parameter.requires_grad_(False)
    source = default_source(base) if config.source == "auto" else config.source
    samples, data_digest = _samples(base, data_dir, config, source)
    identity = {
        "config": asdict(config),
        "base_digest": directory_digest(base_dir),
        "data_digest": data_digest,
    }
    checkpointer = Checkpointer(out_dir, identity, TRAIN_CARD)
    if checkpointer.finished():
        return out_dir

    seed_everything(config.seed)
    vpgc = VPGCLVLM(
        base,
        VPGCConfig(
            layer=config.layer,
            num_heads=config.num_heads,
            # A Q-Former base fixes the width (the queries run through its frozen Q-Former).
            hidden_size=None if base.model_type == "blip-2" else config.hidden_size,
            seed=config.seed,
        ),
    )
    vpgc_parameters = vpgc.parameter_count().adapter
    base_parameters = sum(p.numel() for p in base.model.parameters())
    trained: nn.Module
    if config.method == "vpgc":
        trained = vpgc.adapter

        def loss_of(prompts: list[ICLPrompt], answers: list[str]) -> torch.Tensor:
            return vpgc.loss(prompts, answers, add_eos=True)

    else:
        if config.method == "projector":
            trained = base.model.model.multi_modal_projector
            trained.requires_grad_(True)
        else:
            rank = lora_rank_for(base.model, vpgc_parameters)
            trained = add_lora(base.model, rank, config.seed)
        base_parameters = sum(
            p.numel() for n, p in base.model.named_parameters() if "lora_" not in n
        )

        def loss_of(prompts: list[ICLPrompt], answers: list[str]) -> torch.Tensor:
            return answer_loss(base, prompts, answers, add_eos=True)

    parameters = [p for p in trained.parameters() if p.requires_grad]
    optimizer, scheduler = adamw_warmup_cosine(
        parameters, config.lr, config.weight_decay, config.max_steps, config.warmup
    )
    objects = {"trained": trained, "optimizer": optimizer, "scheduler": scheduler}
    rng = np.random.default_rng(config.seed)
    step, elapsed, history = checkpointer.resume(objects, generators={"samples": rng})

    started = time.perf_counter() - elapsed
    bar = tqdm(
        total=config.max_steps, initial=step, desc=f"training {config.method}", disable=not progress
    )
    losses: list[float] = []
    stop_reason = "max_steps"
    while step < config.max_steps:
        batch = [samples[int(i)] for i in rng.integers(len(samples), size=config.batch_size)]
        loss = loss_of([p for p, _ in batch], [a for _, a in batch])
        clipped_step(loss, optimizer, scheduler, parameters)
        step += 1
        losses.append(loss.item())
        bar.update()
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        seconds = time.perf_counter() - started
        out_of_time = seconds >= config.max_seconds
        if step % config.log_every == 0 or step == config.max_steps or out_of_time:
            window = losses[-config.log_every :] or [losses[-1]]
            history.append(
                {"step": step, "seconds": round(seconds, 2), "loss": float(np.mean(window))}
            )
        if out_of_time:
            stop_reason = "max_seconds"
            break
        if step % config.checkpoint_every == 0 and step < config.max_steps:
            extra = {"elapsed": time.perf_counter() - started, "history": history}
            checkpointer.save(step, objects, extra, generators={"samples": rng})
        if on_step is not None:
            on_step(step)
    bar.close()
    seconds = time.perf_counter() - started
    trained_count = sum(p.numel() for p in parameters)
    card = {
        "method": config.method,
        "steps": step,
        "train_seconds": round(seconds, 2),
        "steps_per_second": round(step / seconds, 3) if seconds > 0 else None,
        "stop_reason": stop_reason,
        "trainable_parameters": trained_count,
        "base_parameters": base_parameters,
        "share_of_base": trained_count / base_parameters,
        "vpgc_parameters": vpgc_parameters,
        "data_dir": str(data_dir),
        "source": source,
        "history": history,
    }
    with checkpointer.finish(card) as staging:
        if config.method == "vpgc":
            vpgc.save_adapter(staging)
        else:
            if config.method == "lora":
                trained.merge_and_unload()  # in place: base.model is plain again
            base.model.save_pretrained(staging)
            base.processor.save_pretrained(staging)
    return out_dir
