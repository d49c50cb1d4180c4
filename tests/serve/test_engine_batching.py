"""``ServeEngine`` batching across requests on the built-in LVLM: a gathered batch of scoring
requests runs as one forward whose every row's response equals the one-at-a-time response
(log-probabilities within 1e-4, the same tokens, ranks and top-k); generation requests run as
one ``generate`` per ``max_tokens`` with the same replies; a bad request (an answer of no
tokens, a prompt longer than the context) fails alone; through a real server, concurrent
clients are answered in fewer passes than requests, and ``--max-batch-size 1`` runs one per
pass."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from drum.data import read_examples
from drum.lvlm.context import ContextOverflowError
from drum.lvlm.prompt import ICLPrompt, build_prompt
from drum.lvlm.served import ServedConfig, ServedLVLM
from drum.lvlm.served.requests import generate_body, scored_body
from drum.serve.batching import BatchingConfig
from drum.serve.engine import ServeEngine
from drum.serve.protocol import ChatRequest, RequestError
from tests.lvlm.prompts import interleaved_prompts
from tests.serve.conftest import thread_server

TOLERANCE = 1e-4


def prompts_and_answers(world: Path) -> tuple[list[ICLPrompt], list[str]]:
    """Zero-, one- and two-shot prompts and interleaved 2- and 3-image prompts, answers of 1
    to 3 tokens (rows of different lengths: right padding in the batch)."""
    pool = read_examples(world / "vqa" / "pool.jsonl")
    prompts = [build_prompt([], pool[3]), build_prompt(pool[1:2], pool[0])]
    prompts.append(build_prompt(pool[5:7], pool[4]))
    answers = [pool[3].answer, "red blue green", pool[4].answer]
    more, more_answers = interleaved_prompts(pool)
    return prompts + more, answers + more_answers


def score_request(prompt: ICLPrompt, answer: str, k: int) -> ChatRequest:
    return ChatRequest(prompt, answer, 1, k, True, None)


def generate_request(prompt: ICLPrompt, max_tokens: int) -> ChatRequest:
    return ChatRequest(prompt, None, max_tokens, None, True, None)


def too_long(world: Path) -> ICLPrompt:
    """A prompt beyond the built-in LVLM's 512 tokens (its context)."""
    pool = read_examples(world / "vqa" / "pool.jsonl")
    return build_prompt(pool[10:60], pool[9])


def largest_difference(got: dict[str, Any], expected: dict[str, Any]) -> float:
    """The largest log-probability difference of two score responses, checked alike in
    everything else (token ids, which tokens are listed, their ranks)."""
    assert got["prompt_token_ids"] == expected["prompt_token_ids"]
    assert got["usage"] == expected["usage"]
    worst = 0.0
    for mine, theirs in zip(got["prompt_logprobs"], expected["prompt_logprobs"], strict=True):
        if theirs is None:
            assert mine is None
            continue
        assert mine.keys() == theirs.keys()
        for token, entry in theirs.items():
            assert mine[token]["rank"] == entry["rank"]
            assert mine[token]["decoded_token"] == entry["decoded_token"]
            worst = max(worst, abs(mine[token]["logprob"] - entry["logprob"]))
    return worst


@pytest.fixture(scope="module")
def solo(builtin_lvlm: Any) -> ServeEngine:
    """Today's engine: one request at a time."""
    return ServeEngine(builtin_lvlm, "builtin", BatchingConfig(max_batch_size=1))


def test_a_score_batch_is_one_forward_equal_to_one_at_a_time(
    builtin_lvlm: Any, solo: ServeEngine, tiny_world: Path
) -> None:
    prompts, answers = prompts_and_answers(tiny_world)
    requests = [
        score_request(p, a, k % 4) for k, (p, a) in enumerate(zip(prompts, answers, strict=True))
    ]
    engine = ServeEngine(builtin_lvlm, "builtin")
    batched = engine.run_batch(requests)
    assert engine.passes == 1  # one forward for all six rows
    worst = 0.0
    for request, response in zip(requests, batched, strict=True):
        assert isinstance(response, dict)
        worst = max(worst, largest_difference(response, solo.complete(request)))
    print(f"batched vs solo score: max |diff| = {worst:.3g}")
    assert worst <= TOLERANCE
    # And the scores are the in-process model's (sum of the answer's log-probabilities).
    expected = builtin_lvlm.score(prompts, answers)
    for response, result in zip(batched, expected, strict=True):
        answer = [entry for entry in response["prompt_logprobs"] if entry is not None]
        ids = response["prompt_token_ids"][-len(answer) :]
        total = sum(entry[str(i)]["logprob"] for entry, i in zip(answer, ids, strict=True))
        assert total == pytest.approx(result.sum, abs=TOLERANCE)


def test_generation_runs_one_batch_per_max_tokens_with_the_same_replies(
    builtin_lvlm: Any, solo: ServeEngine, tiny_world: Path
) -> None:
    prompts, _ = prompts_and_answers(tiny_world)
    requests = [generate_request(p, 3 if i % 2 else 6) for i, p in enumerate(prompts)]
    engine = ServeEngine(builtin_lvlm, "builtin")
    batched = engine.run_batch(requests)
    assert engine.passes == 2  # max_tokens 3 and 6
    for request, response in zip(requests, batched, strict=True):
        assert isinstance(response, dict)
        expected = solo.complete(request)
        assert response["choices"][0]["message"] == expected["choices"][0]["message"]
        assert response["usage"] == expected["usage"]
        assert response["prompt_token_ids"] == expected["prompt_token_ids"]
    replies = [r["choices"][0]["message"]["content"] for r in batched]
    assert replies[0::2] == builtin_lvlm.generate(prompts[0::2], 6)
    assert replies[1::2] == builtin_lvlm.generate(prompts[1::2], 3)


def test_a_bad_request_fails_alone(builtin_lvlm: Any, solo: ServeEngine, tiny_world: Path) -> None:
    prompts, answers = prompts_and_answers(tiny_world)
    long = too_long(tiny_world)
    requests = [
        score_request(prompts[0], answers[0], 2),
        score_request(prompts[1], "", 0),  # no tokens: refused up front
        score_request(long, answers[0], 0),  # beyond the context: the batch runs again alone
        score_request(prompts[3], answers[3], 0),
        generate_request(prompts[2], 4),
        generate_request(long, 4),
        generate_request(prompts[4], 4),
    ]
    engine = ServeEngine(builtin_lvlm, "builtin")
    outcomes = engine.run_batch(requests)
    assert isinstance(outcomes[1], RequestError) and "has no tokens" in str(outcomes[1])
    assert isinstance(outcomes[2], ContextOverflowError)
    assert isinstance(outcomes[5], ContextOverflowError)
    for index in (0, 3):
        assert largest_difference(outcomes[index], solo.complete(requests[index])) <= TOLERANCE
    for index in (4, 6):
        expected = solo.complete(requests[index])["choices"][0]["message"]
        assert outcomes[index]["choices"][0]["message"] == expected
    # Each kind's failed pass ran again one request at a time (the long ones failing there).
    assert engine.passes == 2 + 2


@pytest.mark.parametrize("size", [16, 1])
def test_concurrent_clients_are_answered_in_fewer_passes(
    builtin_lvlm: Any, tiny_world: Path, size: int
) -> None:
    from drum.serve.app import create_app

    pool = read_examples(tiny_world / "vqa" / "pool.jsonl")
    prompts = [build_prompt(pool[i + 20 : i + 21], pool[i]) for i in range(16)]
    answers = [example.answer for example in pool[:16]]
    # A wait long enough that concurrent requests gather even on a loaded machine.
    engine = ServeEngine(builtin_lvlm, "builtin", BatchingConfig(size, 50.0))
    app = create_app(engine, max_concurrent_requests=8)
    with thread_server(app) as base_url:
        lvlm = ServedLVLM(ServedConfig(base_url, "builtin", cache_dir=None, concurrency=8))
        got = lvlm.score(prompts, answers)
        replies = lvlm.generate(prompts, 4)
    expected = builtin_lvlm.score(prompts, answers)
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.sum == pytest.approx(theirs.sum, abs=TOLERANCE)
    assert replies == builtin_lvlm.generate(prompts, 4)
    sent = 2 * len(prompts) + len(prompts)  # two requests a score, one a reply
    assert engine.requests == sent
    if size == 1:
        assert engine.batches == engine.passes == sent and engine.largest_batch == 1
    else:
        assert engine.passes < sent / 2, (engine.passes, engine.batches)
        assert 1 < engine.largest_batch <= 8  # never beyond the requests in the server


def test_a_bad_request_among_concurrent_ones_is_a_400_alone(
    builtin_lvlm: Any, tiny_world: Path
) -> None:
    from drum.serve.app import create_app

    prompts, answers = prompts_and_answers(tiny_world)
    bodies = [scored_body("builtin", p, a) for p, a in zip(prompts, answers, strict=True)]
    bodies.insert(2, scored_body("builtin", too_long(tiny_world), answers[0]))
    bodies.append(generate_body("builtin", too_long(tiny_world), 4))
    bodies.append(generate_body("builtin", prompts[0], 4))
    engine = ServeEngine(builtin_lvlm, "builtin", BatchingConfig(16, 200.0))
    with thread_server(create_app(engine, max_concurrent_requests=16)) as base_url:
        url = base_url + "/chat/completions"
        with ThreadPoolExecutor(len(bodies)) as workers:
            responses = list(workers.map(lambda b: httpx.post(url, json=b, timeout=60), bodies))
    statuses = [r.status_code for r in responses]
    assert statuses == [200, 200, 400] + [200] * (len(prompts) - 2) + [400, 200]
    assert "context of 512 tokens" in responses[2].json()["error"]["message"]
    assert engine.batches < len(bodies)  # they went together, and failed alone
