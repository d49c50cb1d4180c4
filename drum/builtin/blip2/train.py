"""Training the built-in BLIP-2 in three stages, and the gates that say it has the bottleneck.

1. **vision** (``train_vision``): the tower alone, with two linear heads on its patch
   features predicting the colour and the shape of the object covering each patch (or none),
   so the small object's detail is in the patches (gate: decodable >= 99%).
2. **stage A** (``train_stage``, ``stage="a"``): tower frozen; Q-Former, queries, projection and
   LM trained on every question form about both objects (``questions.FORMS``), plus an
   auxiliary loss tying query 0 to the big object and query 1 to the small one (linear heads
   on their outputs predicting each object's colour and shape). The LM learns to read the
   detail and every answer form. Stage A is the ceiling of the measurement.
3. **stage B** (``stage="b"``): everything frozen but the query tokens, which are drawn afresh
   and trained on the primary (big-object) forms, plus ``invariance_loss``: the projected query
   outputs of an image and of its twin whose small object differs must agree. The Q-Former
   stops passing the small object on, while the LM still knows how to use it: BLIP-2's gap,
   made on purpose (gates: the small object's colour near chance in the answers and low in a
   probe of the query outputs, primary forms within 5 points of stage A). Why the invariance
   term: new queries trained on the primary forms alone (the recipe of the probe in
   ``PROBES.md``) kept the detail here: small colour answered 91%, decodable from the query
   outputs 100%, 24% of the Q-Former's attention on the small object's 7% of the image (the
   probe's resampler had 0.4%).

Each stage resumes from its checkpoints (``drum.utils.train_loop``) and writes a full model
directory; ``train_builtin_blip2`` runs all three and writes ``builtin_blip2.json`` with the
diagnostics and the gates (``drum.builtin.blip2.diagnostics``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import AutoTokenizer, Blip2ForConditionalGeneration, BlipImageProcessorPil

from drum.builtin.blip2.diagnostics import attention_share, detail_probe, form_accuracy
from drum.builtin.blip2.encode import (
    PoolFeatures,
    QuestionEncoder,
    batch_forward,
    pixel_values,
    query_outputs,
)
from drum.builtin.blip2.model import (
    Blip2Architecture,
    build_builtin_blip2,
    reinitialise_queries,
    save_builtin_blip2,
)
from drum.builtin.blip2.questions import FORMS, OBJECTS, ScenePool, forms_in
from drum.builtin.blip2.scenes import ATTRIBUTES, BACKGROUND, patch_objects, render, values
from drum.utils.checkpoint import Checkpointer
from drum.utils.fingerprint import directory_digest
from drum.utils.io import atomic_write_json
from drum.utils.schedule import adamw_warmup_cosine, clipped_step
from drum.utils.seed import seed_everything
from drum.utils.train_loop import LoopConfig, run_training

STAGE_CARD = "builtin_blip2_stage.json"
CARD_NAME = "builtin_blip2.json"
STAGES = ("vision", "stage_a", "stage_b")
TRAIN_POOL_SEED, TEST_POOL_SEED = 1, 2


@dataclass(frozen=True)
class BuiltinBlip2Config:
    """The recipe. Budgets are in steps (``max_seconds`` only guards a runaway run), so the
    result does not depend on the machine's load."""

    architecture: Blip2Architecture = field(default_factory=Blip2Architecture)
    train_scenes: int = 3000
    test_scenes: int = 400
    vision_steps: int = 2000
    stage_a_steps: int = 10000
    stage_b_steps: int = 1000
    batch_size: int = 32
    lr: float = 1e-3
    stage_b_lr: float = 2e-3
    invariance_weight: float = 1.0
    aux_weight: float = 0.5
    eval_every: int = 1000
    eval_questions: int = 100
    checkpoint_every: int = 1000
    max_seconds: float = 4 * 3600.0
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.architecture, dict):
            object.__setattr__(self, "architecture", Blip2Architecture(**self.architecture))
        for name in ("train_scenes", "test_scenes", "vision_steps", "stage_a_steps",
                     "stage_b_steps", "batch_size", "eval_every", "eval_questions"):  # fmt: skip
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


STAGE_FIELDS = {
    "vision": ("architecture", "train_scenes", "vision_steps", "batch_size", "lr", "seed"),
    "a": ("architecture", "train_scenes", "stage_a_steps", "batch_size", "lr", "aux_weight",
          "seed"),
    "b": ("architecture", "train_scenes", "stage_b_steps", "batch_size", "stage_b_lr",
          "invariance_weight", "seed"),
}  # fmt: skip
"""What each stage's weights depend on (besides the stage it starts from): its identity, so a
change to a later stage's settings retrains that stage alone. Evaluation cadence and sizes,
checkpoint cadence and the time guard change no weight."""


def stage_identity(stage: str, config: BuiltinBlip2Config) -> dict[str, Any]:
    values = asdict(config)
    return {"stage": stage, "config": {name: values[name] for name in STAGE_FIELDS[stage]}}


def _load(directory: Path) -> tuple[Blip2ForConditionalGeneration, Any, BlipImageProcessorPil]:
    return (
        Blip2ForConditionalGeneration.from_pretrained(directory),
        AutoTokenizer.from_pretrained(directory),
        BlipImageProcessorPil.from_pretrained(directory),
    )


def _loop(config: BuiltinBlip2Config, steps: int) -> LoopConfig:
    return LoopConfig(
        max_steps=steps,
        max_seconds=config.max_seconds,
        checkpoint_every=config.checkpoint_every,
        log_every=config.eval_every,
    )


def _finish(checkpointer: Checkpointer, result: Any, model: Any, tokenizer: Any, ip: Any) -> None:
    card = {**result.summary(), "history": result.history}
    with checkpointer.finish(card) as staging:
        save_builtin_blip2(model, tokenizer, ip, staging)


# ------------------------------------------------------------------------------- vision
def patch_labels(pool: ScenePool, keys: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, P)`` colour and shape labels per patch: 0 for no object, else 1 + the value's
    index, of the object covering it (``patch_objects``)."""
    colours, shapes = [], []
    for key in keys:
        scene = pool.scene(key)
        covered = patch_objects(render(scene)[1])
        for labels, attribute in ((colours, "colour"), (shapes, "shape")):
            table = {
                label: 1 + values(attribute).index(scene.value(obj, attribute))
                for label, obj in zip((1, 2), OBJECTS, strict=True)
            }
            labels.append([0 if c == BACKGROUND else table[int(c)] for c in covered])
    return torch.tensor(colours), torch.tensor(shapes)


def train_vision(out_dir: Path, config: BuiltinBlip2Config, progress: bool = True) -> Path:
    identity = stage_identity("vision", config)
    checkpointer = Checkpointer(out_dir, identity, STAGE_CARD)
    if checkpointer.finished():
        return out_dir
    seed_everything(config.seed)
    model, tokenizer, image_processor = build_builtin_blip2(config.architecture, config.seed)
    pool = ScenePool(TRAIN_POOL_SEED, config.train_scenes)
    keys = [(i, None, None) for i in range(pool.n)]
    pixels = pixel_values(image_processor, pool, keys)
    colour_labels, shape_labels = patch_labels(pool, keys)
    width = config.architecture.vision_hidden
    heads = nn.ModuleDict(
        {"colour": nn.Linear(width, 1 + len(values("colour"))),
         "shape": nn.Linear(width, 1 + len(values("shape")))}
    )  # fmt: skip
    parameters = [*model.vision_model.parameters(), *heads.parameters()]
    optimizer, scheduler = adamw_warmup_cosine(
        parameters, config.lr, 0.01, config.vision_steps, 100
    )
    rng = np.random.default_rng(config.seed)

    def step(_: int) -> float:
        rows = torch.from_numpy(rng.integers(len(keys), size=config.batch_size))
        patches = model.vision_model(pixel_values=pixels[rows]).last_hidden_state[:, 1:]
        loss = sum(
            nn.functional.cross_entropy(heads[name](patches).flatten(0, 1), labels[rows].flatten())
            for name, labels in (("colour", colour_labels), ("shape", shape_labels))
        )
        clipped_step(loss, optimizer, scheduler, parameters)  # type: ignore[arg-type]
        return loss.item()

    result = run_training(
        step,
        checkpointer,
        {"vision": model.vision_model, "heads": heads, "optimizer": optimizer,
         "scheduler": scheduler},
        _loop(config, config.vision_steps),
        generators={"samples": rng},
        desc="built-in BLIP-2: vision tower",
        progress=progress,
    )  # fmt: skip
    _finish(checkpointer, result, model, tokenizer, image_processor)
    return out_dir


# ---------------------------------------------------------------------------- A and B
def _aux_targets(pool: ScenePool, keys: list[Any]) -> dict[tuple[str, str], torch.Tensor]:
    return {
        (obj, attribute): torch.tensor(
            [values(attribute).index(pool.scene(k).value(obj, attribute)) for k in keys]
        )
        for obj in OBJECTS
        for attribute in ATTRIBUTES
    }


def train_stage(
    stage: str,
    start_dir: Path,
    out_dir: Path,
    config: BuiltinBlip2Config,
    progress: bool = True,
) -> Path:
    """Stage ``"a"`` or ``"b"`` (module docstring) from the model in ``start_dir``."""
    if stage not in ("a", "b"):
        raise ValueError(f"stage must be 'a' or 'b', got {stage!r}")
    identity = {**stage_identity(stage, config), "start": directory_digest(start_dir)}
    checkpointer = Checkpointer(out_dir, identity, STAGE_CARD)
    if checkpointer.finished():
        return out_dir
    seed_everything(config.seed)
    model, tokenizer, image_processor = _load(start_dir)
    model.train()
    model.requires_grad_(False)
    steps = config.stage_a_steps if stage == "a" else config.stage_b_steps
    if stage == "a":
        for module in (model.qformer, model.language_projection, model.language_model):
            module.requires_grad_(True)
        model.query_tokens.requires_grad_(True)
        forms = list(FORMS)
    else:
        reinitialise_queries(model, config.seed + 1)
        model.query_tokens.requires_grad_(True)
        forms = forms_in("primary")
    pool = ScenePool(TRAIN_POOL_SEED, config.train_scenes)
    train = PoolFeatures(model, image_processor, pool)
    test = PoolFeatures(model, image_processor, ScenePool(TEST_POOL_SEED, config.test_scenes))
    encoder = QuestionEncoder(tokenizer, config.architecture.num_queries)
    pad_id = tokenizer.pad_token_id
    width = config.architecture.qformer_hidden
    aux = nn.ModuleDict(
        {f"{o}_{a}": nn.Linear(width, len(values(a))) for o in OBJECTS for a in ATTRIBUTES}
    )
    aux_targets = _aux_targets(pool, train.keys)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if stage == "a":
        trainable += list(aux.parameters())
    lr = config.lr if stage == "a" else config.stage_b_lr
    optimizer, scheduler = adamw_warmup_cosine(trainable, lr, 0.01, steps, 100)
    rng = np.random.default_rng([config.seed, ord(stage)])

    def step(_: int) -> float:
        batch = []
        for name in rng.choice(forms, size=config.batch_size):
            question = FORMS[str(name)].form(rng, pool, OBJECTS)
            batch.append(encoder.encode(question, [train.rows[k] for k in question.images]))
        _, loss, _, queries = batch_forward(model, train.features, batch, pad_id)
        if stage == "a":
            rows = torch.tensor([r for _, _, images in batch for r in images])
            aux_loss = sum(
                nn.functional.cross_entropy(
                    aux[f"{obj}_{a}"](queries[:, index]), aux_targets[(obj, a)][rows]
                )
                for index, obj in enumerate(OBJECTS)
                for a in ATTRIBUTES
            )
            loss = loss + config.aux_weight * aux_loss / (len(OBJECTS) * len(ATTRIBUTES))
        elif config.invariance_weight > 0:
            loss = loss + config.invariance_weight * invariance_loss(model, train, rng, config)
        clipped_step(loss, optimizer, scheduler, trainable)
        return loss.item()

    def evaluate(_: int) -> dict[str, Any]:
        with torch.no_grad():
            accuracy = form_accuracy(
                model, encoder, test, pad_id, config.eval_questions, config.seed
            )
        return {"form_accuracy": accuracy}

    result = run_training(
        step,
        checkpointer,
        {"model": model, "aux": aux, "optimizer": optimizer, "scheduler": scheduler},
        _loop(config, steps),
        generators={"samples": rng},
        evaluate=evaluate,
        desc=f"built-in BLIP-2: stage {stage.upper()}",
        progress=progress,
        show=(),
    )
    model.eval()
    _finish(checkpointer, result, model, tokenizer, image_processor)
    return out_dir


def invariance_loss(
    model: Blip2ForConditionalGeneration,
    features: PoolFeatures,
    rng: np.random.Generator,
    config: BuiltinBlip2Config,
) -> torch.Tensor:
    """``|P(Q(x)) - P(Q(x'))|^2 / |P(Q(x))|^2`` (means over the batch): the projected query
    outputs ``P(Q(.))`` of base scenes ``x`` against their twins ``x'`` whose small object has
    another colour or shape. Zero when the visual prompts ignore the small object entirely; the
    denominator (no gradient) keeps the outputs from shrinking to satisfy it."""
    indices = rng.integers(features.pool.n, size=config.batch_size)
    attributes = rng.integers(len(ATTRIBUTES), size=config.batch_size)
    bases = [features.rows[(int(i), None, None)] for i in indices]
    twins = [
        features.rows[(int(i), "small", ATTRIBUTES[int(a)])]
        for i, a in zip(indices, attributes, strict=True)
    ]
    projected = model.language_projection(query_outputs(model, features.features[bases + twins]))
    original, twin = projected[: len(bases)], projected[len(bases) :]
    return ((original - twin) ** 2).mean() / (original.detach() ** 2).mean()


# ------------------------------------------------------------------------------- gates
@dataclass(frozen=True)
class Gate:
    name: str
    value: float
    threshold: float
    at_least: bool

    @property
    def passed(self) -> bool:
        return self.value >= self.threshold if self.at_least else self.value <= self.threshold

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


@torch.no_grad()
def stage_diagnostics(directory: Path, config: BuiltinBlip2Config) -> dict[str, Any]:
    """Teacher-forced accuracy per form, the detail probes and the attention share, on the
    test pool (``diagnostics``)."""
    model, tokenizer, image_processor = _load(directory)
    model.eval()
    pool = ScenePool(TEST_POOL_SEED, config.test_scenes)
    features = PoolFeatures(model, image_processor, pool)
    base_only = PoolFeatures(model, image_processor, pool, [(i, None, None) for i in range(pool.n)])
    encoder = QuestionEncoder(tokenizer, config.architecture.num_queries)
    return {
        "form_accuracy": form_accuracy(
            model, encoder, features, tokenizer.pad_token_id, 4 * config.eval_questions, 7
        ),
        "detail_probe": detail_probe(model, base_only),
        "attention_share": attention_share(model, image_processor, base_only),
    }


def gates(diagnostics: dict[str, dict[str, Any]]) -> list[Gate]:
    """The checks the shipped base must pass (module docstring)."""
    a, b = diagnostics["stage_a"], diagnostics["stage_b"]
    chance = FORMS["small_colour"].chance
    result = [
        Gate("detail in the patches", b["detail_probe"]["from_patches"], 0.99, True),
        Gate("stage A: small colour answered", a["form_accuracy"]["small_colour"], 0.9, True),
        Gate("stage B: small colour near chance", b["form_accuracy"]["small_colour"],
             chance + 0.1, False),
        Gate("stage B: detail in the query outputs", b["detail_probe"]["from_queries"], 0.5,
             False),
    ]  # fmt: skip
    for name in forms_in("primary"):
        result.append(Gate(f"stage A: {name}", a["form_accuracy"][name], 0.9, True))
        result.append(
            Gate(f"stage B: {name} within 5 points of A", b["form_accuracy"][name],
                 a["form_accuracy"][name] - 0.05, True)
        )  # fmt: skip
    return result


def train_builtin_blip2(
    out_dir: str | Path, config: BuiltinBlip2Config | None = None, progress: bool = True
) -> dict[str, Any]:
    """All three stages into ``out_dir/{vision,stage_a,stage_b}``, then the diagnostics and
    gates into ``out_dir/builtin_blip2.json``; returns that card."""
    config = config or BuiltinBlip2Config()
    out_dir = Path(out_dir)
    vision = train_vision(out_dir / "vision", config, progress)
    stage_a = train_stage("a", vision, out_dir / "stage_a", config, progress)
    stage_b = train_stage("b", stage_a, out_dir / "stage_b", config, progress)
    diagnostics = {name: stage_diagnostics(d, config) for name, d in
                   (("stage_a", stage_a), ("stage_b", stage_b))}  # fmt: skip
    checks = gates(diagnostics)
    card = {
        "config": asdict(config),
        "digests": {name: directory_digest(out_dir / name) for name in STAGES},
        "diagnostics": diagnostics,
        "gates": [gate.to_json() for gate in checks],
        "passed": all(gate.passed for gate in checks),
    }
    atomic_write_json(out_dir / CARD_NAME, card)
    return card


def load_card(out_dir: str | Path) -> dict[str, Any]:
    return json.loads((Path(out_dir) / CARD_NAME).read_text(encoding="utf-8"))
