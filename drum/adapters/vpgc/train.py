"""The VPG-C trainer, and two baselines that spend the same data without the module.

``train_vpgc(base, out_dir, samples, config)`` is handed its samples (``TrainingSamples``:
``(prompt, response)`` pairs and a digest of what they read; the built-in kit makes them,
``drum.builtin.vpgc.sources``) and the frozen base they were made for, and:

1. trains with the LM loss on each response and ``[EOS]`` (``add_eos=True``) after its
   prompt, encoded exactly as evaluation encodes it (``HFLVLM.answer_loss``); every step
   draws ``batch_size`` samples uniformly over all samples; AdamW under warmup-cosine,
   gradients clipped to norm 1;
2. runs the one training loop (``run_training``): at most ``max_steps`` steps and
   ``max_seconds``, a loss-history entry every ``log_every`` steps, a checkpoint (the trained
   parameters, optimizer, scheduler and every RNG) every ``checkpoint_every`` steps, so a
   killed run resumes and ends with the same weights;
3. writes ``out_dir`` atomically with the card ``vpgc_train.json`` (identity, steps, seconds,
   steps/s, stop reason, parameter count and share of the base, loss history).

``method``:

* ``"vpgc"``: the VPG-C adapter alone (the base frozen); ``out_dir`` is an adapter directory
  (``adapter_config.json`` + ``adapter_model.safetensors``) for ``load_adapter``;
* ``"projector"``: the base's projector alone (its family record's ``projector``); ``out_dir``
  is a full model directory (model + processor) for ``HFLVLM``;
* ``"queries"``: a Q-Former base's query tokens alone (BLIP-2: what its pre-training tuned
  last); ``out_dir`` is a full model directory;
* ``"lora"``: ``peft``'s LoRA (``B`` zero-init, ``alpha = r``) on the query and value
  projections of every LLM layer's self-attention (Mllama's cross-attention layers have none),
  rank chosen so its parameter count is the closest to the VPG-C adapter's; merged into the
  weights at the end (``merge_and_unload``), so ``out_dir`` is a full model directory too (the
  evaluation is plain ``HFLVLM``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from drum.adapters.vpgc.config import VPGCConfig
from drum.adapters.vpgc.model import VPGCLVLM
from drum.lvlm.families import module_at
from drum.lvlm.hf import HFLVLM
from drum.lvlm.hooks import decoder_layers
from drum.lvlm.prompt import ICLPrompt
from drum.utils.checkpoint import Checkpointer
from drum.utils.schedule import adamw_warmup_cosine, clipped_step
from drum.utils.seed import seed_everything
from drum.utils.train_loop import LoopConfig, run_training

TRAIN_CARD = "vpgc_train.json"
METHODS = ("vpgc", "projector", "lora", "queries")
LORA_TARGETS = ("q_proj", "v_proj")


@dataclass(frozen=True)
class TrainingSamples:
    """What ``train_vpgc`` trains on: ``pairs`` of ``(prompt, response)``, a ``digest`` of the
    data they were read from (part of the run's identity), and for the card the ``source``
    that made them and the directory they were written to."""

    pairs: list[tuple[ICLPrompt, str]]
    digest: str
    source: str
    data_dir: Path | None = None

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ValueError("no training samples")


@dataclass(frozen=True)
class VPGCTrainConfig:
    """One training run.

    Attributes:
        method: ``"vpgc"`` (the adapter), ``"projector"``, ``"queries"`` or ``"lora"``
            (baselines).
        adapter: the VPG-C adapter (``VPGCConfig``; its ``seed`` is replaced by ``seed``);
            the baselines use it to size themselves (LoRA's rank) and for the card.
        lr, weight_decay, warmup: AdamW under warmup-cosine (``warmup`` steps).
        batch_size: samples per step.
        max_steps: steps (the cosine's length); ``max_seconds`` stops earlier.
        seed: the adapter's initial weights and the sample draws (the built-in kit seeds its
            data with it too).
        checkpoint_every: steps between checkpoints.
        log_every: steps per loss-history entry.
    """

    method: str = "vpgc"
    adapter: VPGCConfig = field(default_factory=VPGCConfig)
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 16
    max_steps: int = 1500
    max_seconds: float = 300.0
    warmup: int = 20
    seed: int = 0
    checkpoint_every: int = 250
    log_every: int = 25

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        for name in ("batch_size", "max_steps", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr <= 0 or self.max_seconds <= 0:
            raise ValueError("lr and max_seconds must be > 0")


# ---------------------------------------------------------------------------------- LoRA
def lora_rank_for(model: nn.Module, target: int) -> int:
    """The LoRA rank whose parameter count (``LORA_TARGETS`` of every decoder layer) is the
    closest to ``target`` (at least 1)."""
    per_rank = 0
    for layer in _self_attention_layers(model):
        for name in LORA_TARGETS:
            linear = getattr(layer.self_attn, name)
            per_rank += linear.in_features + linear.out_features
    return max(1, round(target / per_rank))


def lora_target_names(model: nn.Module) -> list[str]:
    """Full module names of ``LORA_TARGETS`` in the language model's decoder layers (the vision
    tower's attention has the same short names and stays untouched)."""
    layers = _self_attention_layers(model)
    wanted = {id(getattr(layer.self_attn, name)) for layer in layers for name in LORA_TARGETS}
    return [name for name, module in model.named_modules() if id(module) in wanted]


def _self_attention_layers(model: nn.Module) -> list[nn.Module]:
    """The decoder layers with self-attention (not Mllama's cross-attention layers, which sit
    among them and attend to the image states alone)."""
    return [layer for layer in decoder_layers(model) if hasattr(layer, "self_attn")]


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
def train_vpgc(
    base: HFLVLM,
    out_dir: str | Path,
    samples: TrainingSamples,
    config: VPGCTrainConfig | None = None,
    *,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
) -> Path:
    """Train ``config.method`` on ``samples`` over ``base`` (frozen here; the projector and
    LoRA baselines change it in place) and write ``out_dir`` (module docstring); a finished
    ``out_dir`` of the same run is returned as is, an interrupted one resumes from its
    checkpoint. ``on_step(step)`` runs after each step.

    Example::

        samples = TrainingSamples(pairs, digest="v1", source="mine")
        train_vpgc(HFLVLM(base_dir), "runs/vpgc/adapter", samples, VPGCTrainConfig())
        model = load_adapter(HFLVLM(base_dir), "runs/vpgc/adapter")
    """
    config = config or VPGCTrainConfig()
    # The adapter's initial weights are seeded by the run's seed (recorded so in the identity).
    config = replace(config, adapter=replace(config.adapter, seed=config.seed))
    out_dir = Path(out_dir)
    for parameter in base.model.parameters():
        parameter.requires_grad_(False)
    identity = {
        "config": asdict(config),
        "base": base.fingerprint,
        "data_digest": samples.digest,
    }
    checkpointer = Checkpointer(out_dir, identity, TRAIN_CARD)
    if checkpointer.finished():
        return out_dir

    seed_everything(config.seed)
    vpgc = VPGCLVLM(base, config.adapter)
    vpgc_parameters = vpgc.parameter_count().adapter
    base_parameters = sum(p.numel() for p in base.model.parameters())
    trained: nn.Module
    if config.method == "vpgc":
        trained = vpgc.adapter

        def loss_of(prompts: list[ICLPrompt], answers: list[str]) -> torch.Tensor:
            return vpgc.loss(prompts, answers, add_eos=True)

    else:
        if config.method == "projector":
            trained = module_at(base.model, base.family.projector)
            trained.requires_grad_(True)
        elif config.method == "queries":
            if not base.family.qformer:
                raise ValueError(f"{base.name}: method 'queries' needs a Q-Former base (BLIP-2)")
            trained = nn.Module()
            trained.query_tokens = base.model.query_tokens  # the base's own parameter, shared
            trained.requires_grad_(True)
        else:
            rank = lora_rank_for(base.model, vpgc_parameters)
            trained = add_lora(base.model, rank, config.seed)
        base_parameters = sum(
            p.numel() for n, p in base.model.named_parameters() if "lora_" not in n
        )

        def loss_of(prompts: list[ICLPrompt], answers: list[str]) -> torch.Tensor:
            return base.answer_loss(prompts, answers, add_eos=True)

    parameters = [p for p in trained.parameters() if p.requires_grad]
    optimizer, scheduler = adamw_warmup_cosine(
        parameters, config.lr, config.weight_decay, config.max_steps, config.warmup
    )
    objects = {"trained": trained, "optimizer": optimizer, "scheduler": scheduler}
    rng = np.random.default_rng(config.seed)
    pairs = samples.pairs

    def train_step(index: int) -> float:  # draws and steps; the loop does the rest
        batch = [pairs[int(i)] for i in rng.integers(len(pairs), size=config.batch_size)]
        loss = loss_of([p for p, _ in batch], [a for _, a in batch])
        clipped_step(loss, optimizer, scheduler, parameters)
        return loss.item()

    loop = LoopConfig(
        max_steps=config.max_steps,
        max_seconds=config.max_seconds,
        checkpoint_every=config.checkpoint_every,
        log_every=config.log_every,
    )
    result = run_training(
        train_step,
        checkpointer,
        objects,
        loop,
        generators={"samples": rng},
        on_step=on_step,
        desc=f"training {config.method}",
        progress=progress,
    )
    trained_count = sum(p.numel() for p in parameters)
    card = {
        "method": config.method,
        **result.summary(),
        "trainable_parameters": trained_count,
        "base_parameters": base_parameters,
        "share_of_base": trained_count / base_parameters,
        "vpgc_parameters": vpgc_parameters,
        "data_dir": None if samples.data_dir is None else str(samples.data_dir),
        "source": samples.source,
        "history": result.history,
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
