"""DEMON's answer normalisation: ``Eval.process`` of the reference ``evaluate.py``.

Reference: ``DCDmllm/Cheetah``, ``DEMON Benchmark/scripts/evaluate.py`` (commit 619bd61). Every
prediction, ground truth and choice goes through it before any DEMON scorer looks at it.
"""

from __future__ import annotations

from drum.metrics.vqa import process_punctuation


def normalize(text: str) -> str:
    """``Eval.process``, quirks included.

    Steps, in the reference's order:

    1. ``"\\n"`` and ``"\\t"`` become spaces, then surrounding whitespace is stripped.
    2. VQA ``processPunctuation`` (the reference's copy is line for line
       ``drum.metrics.vqa.process_punctuation``): each of ``; / [ ] " { } ( ) = + \\ _ - > < @ `
       , ? !`` is deleted if it touches a space anywhere in the text, or if the text contains a
       digit-comma-digit anywhere, and becomes a space otherwise. The condition looks at the
       whole string as it was before any replacement ("a-b c-d" -> "a b c d", "a -b c-d" ->
       "a b cd", "1,000 x-y" -> "1000 xy").
    3. Periods are deleted by the VQA regex ``(?!<=\\d)(\\.)(?!\\d)``: its "lookbehind" is a
       typo'd lookahead for the literal "<=", so every period not followed by a digit goes
       ("5." -> "5", "3.5" stays). ``re.UNICODE`` (32) is passed as ``count``, so only the first
       32 such periods go; later ones stay.
    4. ``strip("'")`` then ``strip('"')`` (the latter a no-op: step 2 removed every ``"``), and
       only then whitespace, so a quote next to a space made in step 2 survives ("'yes'!" ->
       "yes'"). Finally lowercase.

    Unlike the VQA normaliser there is no number-word, article or contraction handling.

    >>> normalize("Image B!")
    'image b'
    >>> normalize("The cat.\\nIt sat.")
    'the cat it sat'
    """
    text = text.replace("\n", " ").replace("\t", " ").strip()
    text = process_punctuation(text)
    return text.strip("'").strip('"').strip().lower()
