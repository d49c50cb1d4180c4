"""Word-level tokenizers built locally with ``tokenizers`` (no hub download needed).

The built-in models speak the built-in world's closed vocabulary, so one token per word is
both exact and fast; wrapped as ``PreTrainedTokenizerFast`` it saves and loads like any Hugging
Face tokenizer and plugs into ``CLIPProcessor`` / ``SiglipProcessor``.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)


def build_word_tokenizer(
    words: Iterable[str], model_max_length: int = 32
) -> PreTrainedTokenizerFast:
    """A lowercase word-level tokenizer: ids 0-3 are ``[PAD] [UNK] [BOS] [EOS]``, then ``words``.

    Every encoded text is ``[BOS] w1 ... wn [EOS]``; unknown words map to ``[UNK]``.
    """
    vocab = {token: index for index, token in enumerate(SPECIAL_TOKENS)}
    for word in sorted(set(words)):
        if word not in vocab:
            vocab[word] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()]
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}",
        special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        model_max_length=model_max_length,
    )
