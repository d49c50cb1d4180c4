"""``drum index build``."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from drum.cli.main import app

runner = CliRunner()


def test_index_build_saves_an_index(tiny_world: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    from drum.index import VectorIndex

    out = tmp_path / "index"
    result = runner.invoke(
        app,
        [
            "index",
            "build",
            "--pool",
            str(tiny_world / "vqa" / "pool.jsonl"),
            "--model",
            str(tiny_clip_dir),
            "--out",
            str(out),
            "--cache",
            str(tmp_path / "cache"),
        ],
    )
    assert result.exit_code == 0, result.output
    index = VectorIndex.load(out)
    assert index.ntotal == 60 and index.meta["strategy"] == "concat"


def test_index_build_refuses_a_pool_without_answers(tiny_world: Path, tmp_path: Path) -> None:
    from tests.data.importers.fixtures import write_answerless

    pool = write_answerless(tiny_world / "vqa" / "pool.jsonl", tmp_path / "test.jsonl")
    args = ["index", "build", "--pool", str(pool), "--model", str(tmp_path / "no-model")]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "index")])
    assert result.exit_code == 2  # before the model argument is even looked at
    assert "test.jsonl:2: example" in result.output and "has no answers" in result.output


def test_index_build_indexes_joint_embeddings(tiny_world: Path, tmp_path: Path) -> None:
    """``--strategy joint``: the model is an LVLM read as a joint embedder; the index holds
    one joint vector per pool example, the LVLM's width."""
    import numpy as np

    from drum.builtin.assets import ASSETS_DIR
    from drum.data.jsonl import read_examples
    from drum.embed.joint import LVLMEmbedder
    from drum.index import VectorIndex

    pool = tiny_world / "vqa" / "pool.jsonl"
    lvlm = str(ASSETS_DIR / "lvlm")
    out = tmp_path / "index"
    args = ["index", "build", "--pool", str(pool), "--model", lvlm, "--strategy", "joint"]
    result = runner.invoke(app, [*args, "--out", str(out), "--cache", str(tmp_path / "cache")])
    assert result.exit_code == 0, result.output
    index = VectorIndex.load(out)
    assert index.ntotal == 60 and index.meta["strategy"] == "joint"
    vectors = LVLMEmbedder(lvlm).embed_examples(read_examples(pool)[:1])
    scores, labels = index.search(vectors, 1)
    assert labels[0][0] == 0 and np.isclose(scores[0][0], 1.0, atol=1e-5)


def test_index_build_embeds_with_the_joint_instruction(tiny_world: Path, tmp_path: Path) -> None:
    """``--joint-instruction``: the joint vectors are the embedder's with that instruction (not
    the ones without it), and they are cached apart from them."""
    import numpy as np

    from drum.builtin.assets import ASSETS_DIR
    from drum.data.jsonl import read_examples
    from drum.embed.joint import LVLMEmbedder
    from drum.index import VectorIndex

    pool = tiny_world / "vqa" / "pool.jsonl"
    lvlm = str(ASSETS_DIR / "lvlm")
    cache = str(tmp_path / "cache")
    args = ["index", "build", "--pool", str(pool), "--model", lvlm, "--strategy", "joint"]
    plain = runner.invoke(app, [*args, "--out", str(tmp_path / "plain"), "--cache", cache])
    assert plain.exit_code == 0, plain.output
    instructed = runner.invoke(
        app,
        [*args, "--out", str(tmp_path / "instructed"), "--cache", cache]
        + ["--joint-instruction", "what color"],
    )
    assert instructed.exit_code == 0, instructed.output
    first = read_examples(pool)[:1]
    with_instruction = LVLMEmbedder(lvlm, "what color").embed_examples(first)
    without = LVLMEmbedder(lvlm).embed_examples(first)
    assert not np.allclose(with_instruction, without, atol=1e-3)
    for name, vectors in (("instructed", with_instruction), ("plain", without)):
        scores, labels = VectorIndex.load(tmp_path / name).search(vectors, 1)
        assert labels[0][0] == 0 and np.isclose(scores[0][0], 1.0, atol=1e-5)


def test_a_joint_instruction_without_a_joint_strategy_is_one_line(
    tiny_world: Path, tmp_path: Path
) -> None:
    pool = tiny_world / "vqa" / "pool.jsonl"
    args = ["index", "build", "--pool", str(pool), "--model", str(tmp_path / "no-model")]
    args += ["--out", str(tmp_path / "index"), "--joint-instruction", "what color"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2  # before the model argument is looked at
    assert "--joint-instruction: no strategy of 'concat' embeds joint vectors" in result.output
