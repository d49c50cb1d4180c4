"""Word-level tokenizers built locally with ``tokenizers`` (no hub download needed).

The built-in models speak the built-in world's closed vocabulary, so one token per word is
both exact and fast; wrapped as ``PreTrainedTokenizerFast`` it saves and loads like any Hugging
Face tokenizer and plugs into ``CLIPProcessor`` / ``SiglipProcessor`` / ``LlavaProcessor``.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)


def build_word_tokenizer(
    words: Iterable[str],
    model_max_length: int = 32,
    wrap_bos_eos: bool = True,
    extra_special_tokens: tuple[str, ...] = (),
) -> PreTrainedTokenizerFast:
    """A lowercase word-level tokenizer: ids 0-3 are ``[PAD] [UNK] [BOS] [EOS]``, then
    ``extra_special_tokens`` (never split, e.g. ``<image>``), then ``words``.

    With ``wrap_bos_eos`` every encoded text is ``[BOS] w1 ... wn [EOS]`` (what a text encoder
    wants); without it texts encode bare (a decoder's chat template adds the markers).
    Unknown words map to ``[UNK]``.
    """
    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *extra_special_tokens))}
    for word in sorted(set(words)):
        if word not in vocab:
            vocab[word] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    if wrap_bos_eos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A {EOS}",
            special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])],
        )
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        model_max_length=model_max_length,
    )
    if extra_special_tokens:
        wrapped.add_special_tokens({"additional_special_tokens": list(extra_special_tokens)})
    return wrapped
