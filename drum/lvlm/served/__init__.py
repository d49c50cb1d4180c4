"""Served LVLMs: any OpenAI-compatible chat-completions server as an ``LVLM``.

``ServedConfig`` (``config``: the server, the model, concurrency, timeout, retries, the cache
and the API key's environment variable; the ``openai:<base_url>#<model>`` spelling),
``ServedLVLM`` (``model``), the requests and how a score is read back (``requests``), the
retrying, concurrent transport (``client``) and the on-disk response cache (``cache``).

Example::

    from drum.lvlm.served import ServedLVLM
    lvlm = ServedLVLM.from_spec("openai:http://127.0.0.1:8000/v1#Qwen/Qwen2.5-VL-7B-Instruct")
"""

from drum.utils.lazy import lazy_exports

__all__ = [
    "ResponseCache",
    "ScoreUnavailable",
    "ServedConfig",
    "ServedError",
    "ServedLVLM",
    "is_served_spec",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ResponseCache": "drum.lvlm.served.cache",
        "ScoreUnavailable": "drum.lvlm.served.model",
        "ServedConfig": "drum.lvlm.served.config",
        "ServedError": "drum.lvlm.served.client",
        "ServedLVLM": "drum.lvlm.served.model",
        "is_served_spec": "drum.lvlm.served.config",
    },
)
