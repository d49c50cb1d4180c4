"""The ``joint`` strategy: demonstrations ranked by the cosine of the query's and the pool
example's joint embeddings (the built-in world LVLM as the joint embedder), through the
retriever, the ICL evaluation and the ``drum retrieve`` / ``drum eval`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from drum.builtin.assets import ASSETS_DIR
from drum.builtin.world.tasks import world_tasks
from drum.cli.main import app
from drum.data.example import Example
from drum.data.jsonl import read_examples
from drum.embed.example_embeddings import ExampleEmbeddings
from drum.embed.hf import HFDualEncoder
from drum.embed.joint import LVLMEmbedder
from drum.eval.icl import ICLEvalConfig, run_icl_eval
from drum.eval.records import QUERIES_FILE, read_query_records
from drum.retrieve.retriever import DemonstrationRetriever
from drum.retrieve.strategies import RetrievalConfig, StrategySpec
from drum.testing import FakeLVLM

BUILTIN_LVLM = ASSETS_DIR / "lvlm"
runner = CliRunner()


@pytest.fixture(scope="module")
def joint() -> LVLMEmbedder:
    return LVLMEmbedder(BUILTIN_LVLM)


@pytest.fixture(scope="module")
def vqa(tiny_world: Path) -> tuple[list[Example], list[Example]]:
    return (
        read_examples(tiny_world / "vqa" / "pool.jsonl"),
        read_examples(tiny_world / "vqa" / "val.jsonl")[:8],
    )


def test_joint_ranks_by_the_cosine_of_joint_embeddings(
    joint: LVLMEmbedder, vqa: tuple[list[Example], list[Example]]
) -> None:
    pool, queries = vqa
    k = 5
    retriever = DemonstrationRetriever(
        ExampleEmbeddings.compute(pool, joint, parts=("joint",)),
        RetrievalConfig("joint", k=k),
        embedder=joint,  # the queries' joint embeddings are computed by the retriever
    )
    retrievals = retriever.retrieve(queries)
    similarity = joint.embed_examples(queries) @ joint.embed_examples(pool).T  # brute force
    for query, row, retrieval in zip(queries, similarity, retrievals, strict=True):
        expected = [int(i) for i in np.argsort(-row) if pool[int(i)].id != query.id][:k]
        assert list(retrieval.demo_ids) == [pool[i].id for i in expected[::-1]]  # best last
        np.testing.assert_allclose(retrieval.scores, row[expected[::-1]], atol=1e-5)


def test_a_strategy_refuses_embeddings_without_its_parts(
    joint: LVLMEmbedder, vqa: tuple[list[Example], list[Example]]
) -> None:
    pool, _ = vqa
    separate = ExampleEmbeddings.compute(pool, joint)  # image and text, no joint rows
    with pytest.raises(ValueError, match="'joint' compares joint embeddings, which were not"):
        DemonstrationRetriever(separate, RetrievalConfig("joint", k=2))
    joint_only = ExampleEmbeddings.compute(pool, joint, parts=("joint",))
    with pytest.raises(ValueError, match="'concat' compares image and text embeddings"):
        DemonstrationRetriever(joint_only, RetrievalConfig("concat", k=2))


def test_eval_config_asks_each_embedder_for_the_parts_its_strategies_compare() -> None:
    mine = StrategySpec("mine", "image", embedder="joint")
    config = ICLEvalConfig(strategies=("concat", "joint", "random"), shots=(1,))
    assert config.required_embedders == ("default", "joint")
    assert config.embedder_parts("default") == ("image", "text")
    assert config.embedder_parts("joint") == ("joint",)
    both = ICLEvalConfig(strategies=("joint", mine), shots=(1,))
    assert both.embedder_parts("joint") == ("image", "text", "joint")


def test_icl_eval_compares_concat_and_joint(
    tiny_world: Path, tiny_clip_dir: Path, joint: LVLMEmbedder, tmp_path: Path
) -> None:
    task = world_tasks(tiny_world)["vqa"]
    config = ICLEvalConfig(strategies=("concat", "joint"), shots=(2,), max_queries=6)
    embedders = {"default": HFDualEncoder(tiny_clip_dir), "joint": joint}
    lvlm = FakeLVLM("first_demo", fingerprint="first-demo")
    results = run_icl_eval([task], lvlm, config, embedders, tmp_path, progress=False)
    assert [row["strategy"] for row in results["rows"]] == ["concat", "joint"]
    assert results["config"]["embedders"]["joint"]["fingerprint"] == joint.fingerprint
    records = [r for r in read_query_records(tmp_path / QUERIES_FILE) if r["strategy"] == "joint"]
    pool = {e.id: e for e in read_examples(task.pool)}
    queries = {e.id: e for e in read_examples(task.queries)}
    for record in records:
        vectors = joint.embed_examples([queries[record["query_id"]]])
        demos = joint.embed_examples([pool[d] for d in record["demo_ids"]])
        np.testing.assert_allclose(record["similarity"], (demos @ vectors.T)[:, 0], atol=1e-5)


def test_drum_eval_and_retrieve_take_a_joint_embedder(tiny_world: Path, tmp_path: Path) -> None:
    """``--embedder joint=PATH`` serves strategy ``joint`` from an LVLM checkpoint (here the
    evaluated LVLM itself, loaded once); ``drum retrieve --strategy joint --model PATH``."""
    lvlm = str(BUILTIN_LVLM)
    args = ["eval", "--world", str(tiny_world), "--model", lvlm, "--task", "vqa"]
    args += ["--strategy", "joint", "--shots", "1", "--max-queries", "3"]
    args += ["--embedder", f"joint={lvlm}", "--cache", str(tmp_path / "cache")]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "eval" / "icl_results.json").read_text())
    assert run["config"]["embedders"]["joint"]["fingerprint"].startswith("joint-llava-")
    missing = runner.invoke(app, [*args[:-4], "--out", str(tmp_path / "missing")])
    assert missing.exit_code == 2 and "embedder 'joint'" in missing.output

    out = tmp_path / "demos.jsonl"
    result = runner.invoke(
        app,
        [
            "retrieve",
            "--pool", str(tiny_world / "vqa" / "pool.jsonl"),
            "--queries", str(tiny_world / "vqa" / "val.jsonl"),
            "--model", lvlm,
            "--strategy", "joint",
            "--k", "2",
            "--out", str(out),
            "--cache", str(tmp_path / "cache"),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    joint = LVLMEmbedder(lvlm)
    query = read_examples(tiny_world / "vqa" / "val.jsonl")[0]
    pool = {e.id: e for e in read_examples(tiny_world / "vqa" / "pool.jsonl")}
    demos = [pool[d["id"]] for d in records[0]["demos"]]
    expected = (joint.embed_examples(demos) @ joint.embed_examples([query]).T)[:, 0]
    np.testing.assert_allclose([d["score"] for d in records[0]["demos"]], expected, atol=1e-5)
