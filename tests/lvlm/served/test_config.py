"""``ServedConfig``: the ``openai:<base_url>#<model>[?option=value&...]`` spelling and the
checks of every field."""

from __future__ import annotations

from pathlib import Path

import pytest

from drum.lvlm.served.config import ServedConfig, is_served_spec


def test_a_spec_names_the_server_the_model_and_the_options() -> None:
    config = ServedConfig.from_spec(
        "openai:http://127.0.0.1:8000/v1/#Qwen/Qwen2.5-VL-7B-Instruct"
        "?concurrency=16&timeout=300&retries=2&api_key_env=MY_KEY&cache_dir=runs/served"
    )
    assert config.base_url == "http://127.0.0.1:8000/v1"  # the trailing / dropped
    assert config.model == "Qwen/Qwen2.5-VL-7B-Instruct"
    assert (config.concurrency, config.timeout, config.retries) == (16, 300.0, 2)
    assert config.api_key_env == "MY_KEY" and config.cache_dir == Path("runs/served")
    assert ServedConfig.from_spec("openai:https://h/v1#m?cache_dir=none").cache_dir is None
    plain = ServedConfig.from_spec("openai:https://api.openai.com/v1#gpt-4o")
    assert plain.api_key_env == "OPENAI_API_KEY" and plain.cache_dir is not None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("openai:http://127.0.0.1:8000/v1", "no model name"),
        ("openai:http://h/v1#", "no model name"),
        ("openai:127.0.0.1:8000#m", "must start with http:// or https://"),
        ("openai:http://h#m?workers=4", "unknown option 'workers'; the options are api_key_env"),
        ("openai:http://h#m?concurrency=many", "concurrency must be an integer, got 'many'"),
        ("openai:http://h#m?timeout=-1", "timeout must be > 0"),
        ("openai:http://h#m?retries=-1", "retries must be >= 0"),
        ("models/lvlm", "is written openai:<base_url>#<model>"),
    ],
)
def test_a_bad_spec_says_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("?", r"\?")):
        ServedConfig.from_spec(spec)


def test_only_the_openai_prefix_is_a_served_model() -> None:
    assert is_served_spec("openai:http://h#m")
    assert not is_served_spec("models/lvlm") and not is_served_spec(Path("openai:x"))
