"""VQAv2 accuracy: the official answer normalisation and the leave-one-out "3 humans" score.

A port of ``vqaEval.py`` (``VQAEval.processPunctuation``, ``processDigitArticle`` and the accuracy
loop of ``evaluate``) from the official VQA evaluation tools, GT-Vision-Lab/VQA
(PythonEvaluationTools/vqaEvaluation/vqaEval.py, a Python 2 script). The tables and regular
expressions are the official ones, and so is the behaviour, quirks included, so that scores match
the official ones. ``vqa_accuracy``'s default, ``normalization="official"``, is that script:

1. Prediction and references: ``'\\n'`` and ``'\\t'`` become spaces, then ``strip()``; nothing
   else.
2. Only when the references disagree (``len(set(gtAnswers)) > 1``) do both go through
   ``processPunctuation`` then ``processDigitArticle`` (which lowercases). When all references
   agree, nothing is normalised and the comparison is exact and case-sensitive: "WHITE" scores 0
   against ten "white", "Two" 0 against ten "2", and "red, white, and blue?" 1 against ten
   identical "red, white, and blue?" (normalising would have made both "red white and blue").
3. ``acc = mean_i min(1, #{j != i : r_j == pred} / 3)`` over the 10 references.

Quirks kept (each one changes a score somewhere):

- The unanimous case is not normalised and is case-sensitive (point 2).
- ``periodStrip`` is ``(?!<=\\d)(\\.)(?!\\d)``: a typo for the lookbehind ``(?<!\\d)``, it removes
  every period not followed by a digit ("5." and "u.s.a." lose theirs, "3.5" keeps it).
- ``periodStrip.sub("", text, re.UNICODE)`` passes the flag as ``count``: at most 32 periods
  are removed.
- Python 2's ``\\d`` without the ``re.UNICODE`` flag (which, above, never reaches the pattern) is
  ``[0-9]``: so are ours (``re.ASCII``), and "٣.٥" loses its period, "٣,٥" is no thousands
  separator.
- Python 2's ``unicode.lower()`` maps "İ" (U+0130) to "i"; Python 3's adds a combining dot.
  Ours lowercases as Python 2 did.
- The punctuation test looks at the input text, not the text being rewritten, and one
  digit-comma-digit anywhere ("1,000") deletes every punctuation mark instead of spacing it.
- "none" is the number 0; contraction keys with capitals ("Im", "Ive") never match, as
  ``processDigitArticle`` lowercases first; "somebody'd" maps to "somebodyd" (reversed entry).

Where we differ, because the input is not the official script's:

- The official loop leaves out "the other answers" by comparing whole answer dicts
  (``item != gtAnsDatum``); with the distinct ``answer_id`` of every official release that
  leaves out exactly one, which is what we do with plain strings.
- The official script reports ``round(100 * acc, 2)``; we return unrounded fractions.
- Fewer than 10 references: the same leave-one-out average over however many there are (a
  perfect answer scores 1/3 with 2 references, 2/3 with 3, 1 from 4 on). A single reference
  would always score 0 officially (nothing is left after leaving it out), so we score exact
  match instead (normalised or not by the same rules).

``normalization="always"`` is the older, more lenient variant: prediction and references are
always normalised, so case and punctuation never matter (registered as the metric
``vqa_accuracy_always``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, get_args

from drum.metrics.registry import MetricSpec

# Keys with capitals ("Im", "Ive", "Id've") can never match because processDigitArticle lowercases
# first; they stay, as in the official table, so the behaviour is the official one.
CONTRACTIONS: dict[str, str] = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
    "somebody'd": "somebodyd",  # sic: reversed in the official table
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've",
    "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}  # fmt: skip

# "none" -> "0" is official: "none" answers to counting questions are scored as zero.
NUMBER_WORDS: dict[str, str] = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip

ARTICLES: frozenset[str] = frozenset({"a", "an", "the"})

# '.', ':' and "'" are deliberately absent: periods go through PERIOD_STRIP, apostrophes must
# survive for the contractions, and the official list has no colon.
PUNCTUATION: tuple[str, ...] = (
    ";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-",
    ">", "<", "@", "`", ",", "?", "!",
)  # fmt: skip

# Official typo kept: "(?!<=\d)" was meant as the lookbehind "(?<!\d)" but is a lookahead for the
# literal "<=" followed by a digit, which never matches a '.', so every period not followed by a
# digit is removed ("3.5" keeps its period, "5." and "u.s.a." lose theirs).
# re.ASCII: Python 2's \d without re.UNICODE is [0-9] (see the module docstring).
PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)", re.ASCII)
COMMA_STRIP = re.compile(r"(\d)(\,)(\d)", re.ASCII)
# The official call is ``periodStrip.sub("", text, re.UNICODE)``: the flag lands in the ``count``
# argument, capping removals at int(re.UNICODE) == 32 periods. Kept for exactness.
_PERIOD_STRIP_COUNT = int(re.UNICODE)


def process_punctuation(text: str) -> str:
    """``VQAEval.processPunctuation``.

    Each character of ``PUNCTUATION`` is deleted if it touches a space anywhere in the text or if
    the text contains a digit-comma-digit ("1,000"), and replaced by a space otherwise
    ("red,blue" -> "red blue", "yes, sir" -> "yes sir", "1,000" -> "1000"). Then periods not
    followed by a digit are deleted. Case is kept.
    """
    out = text
    has_digit_comma = COMMA_STRIP.search(text) is not None
    for p in PUNCTUATION:
        # The condition looks at the input text, not the partially processed one (as official).
        if (p + " " in text or " " + p in text) or has_digit_comma:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return PERIOD_STRIP.sub("", out, count=_PERIOD_STRIP_COUNT)


def _python2_lower(text: str) -> str:
    """``unicode.lower()`` of Python 2: the simple case mapping, which differs from Python 3's
    full mapping only for U+0130 ("İ" -> "i", where Python 3 gives "i" + U+0307)."""
    return text.replace("\u0130", "i").lower()


def process_digit_article(text: str) -> str:
    """``VQAEval.processDigitArticle``: lowercase (as Python 2 did), split on whitespace, number
    words 0-10 -> digits, drop articles (a, an, the), expand apostrophe-less contractions
    ("dont" -> "don't"), join with single spaces."""
    words = [NUMBER_WORDS.get(word, word) for word in _python2_lower(text).split()]
    words = [word for word in words if word not in ARTICLES]
    return " ".join(CONTRACTIONS.get(word, word) for word in words)


def _clean_whitespace(text: str) -> str:
    """The first step of the official loop: newlines and tabs become spaces, then strip."""
    return text.replace("\n", " ").replace("\t", " ").strip()


def normalize_vqa_answer(text: str) -> str:
    """The official answer normalisation: whitespace clean-up, then ``process_punctuation``,
    then ``process_digit_article``.

    Examples: "Two" -> "2", "the dog." -> "dog", "dont" -> "don't", "1,000" -> "1000",
    "t-shirt" -> "t shirt".
    """
    return process_digit_article(process_punctuation(_clean_whitespace(text)))


VQANormalization = Literal["official", "always"]
VQA_NORMALIZATIONS: tuple[str, ...] = get_args(VQANormalization)


def _compared(
    prediction: str, references: Sequence[str], normalization: VQANormalization
) -> tuple[str, list[str]]:
    """The prediction and references as the accuracy loop compares them."""
    if normalization == "always":
        return normalize_vqa_answer(prediction), [normalize_vqa_answer(r) for r in references]
    if normalization != "official":
        raise ValueError(
            f"normalization must be one of {VQA_NORMALIZATIONS}, got {normalization!r}"
        )
    pred = _clean_whitespace(prediction)
    refs = [_clean_whitespace(r) for r in references]
    if len(set(refs)) > 1:  # official: normalise only when the humans disagree
        pred = normalize_vqa_answer(pred)
        refs = [normalize_vqa_answer(r) for r in refs]
    return pred, refs


def vqa_accuracy(
    prediction: str,
    references: Sequence[str],
    *,
    normalization: VQANormalization = "official",
) -> float:
    """VQAv2 accuracy of one prediction against its human answers (a number in [0, 1]).

    With ``n`` references ``r_1..r_n`` and ``m_i = #{j != i : r_j == prediction}`` (compared
    as ``normalization`` says, see the module docstring)::

        acc = (1 / n) * sum_i min(1, m_i / 3)

    i.e. "correct if at least 3 humans said it", averaged over the ``n`` leave-one-out subsets
    of the references, as the official script does. With 10 answers of which 3 match: 3 subsets
    keep 2 matches (2/3) and 7 keep 3 (1), so acc = (3 * 2/3 + 7) / 10 = 0.9.

    ``normalization="official"`` (the default) is ``vqaEval.py`` to the letter: whitespace
    clean-up only, and the full normalisation only when the references disagree, so "WHITE"
    scores 0 against ten "white". ``"always"`` normalises prediction and references every time.
    Fewer than 10 references and a single reference: see the module docstring.
    """
    if not references:
        raise ValueError("vqa_accuracy needs at least one reference answer")
    pred, refs = _compared(prediction, references, normalization)
    matches = [r == pred for r in refs]
    if len(refs) == 1:
        return float(matches[0])
    total = sum(matches)
    # Leaving out reference i removes one match exactly when r_i itself matches.
    return sum(min(1.0, (total - int(hit)) / 3.0) for hit in matches) / len(refs)


def vqa_accuracy_always(prediction: str, references: Sequence[str]) -> float:
    """``vqa_accuracy(..., normalization="always")``: the metric ``vqa_accuracy_always``."""
    return vqa_accuracy(prediction, references, normalization="always")


VQA_ACCURACY_SPEC = MetricSpec(
    name="vqa_accuracy", fn=vqa_accuracy, higher_is_better=True, level="example"
)
VQA_ACCURACY_ALWAYS_SPEC = MetricSpec(
    name="vqa_accuracy_always", fn=vqa_accuracy_always, higher_is_better=True, level="example"
)
