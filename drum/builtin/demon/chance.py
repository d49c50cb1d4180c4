"""Chance levels of the built-in tasks, computed with DEMON's own scorers.

- multi-choice: the expected score of a uniformly random pick among each sample's choices
  (the label "Image B" for image-choice tasks, scored by ``score_image_choice``; the choice's
  text for the others, scored by TF-IDF matching as the reference does);
- open-ended: the expected ROUGE-L of answering with the response of another sample of the
  same split drawn uniformly (a guess from the task's answer distribution), exact over all
  pairs.
"""

from __future__ import annotations

import re
from collections import Counter

from drum.demon.categories import OPEN_ENDED
from drum.demon.format import DemonTask
from drum.demon.normalize import normalize
from drum.demon.scorers import score_image_choice, score_multiple_choice, score_open_ended

_WORD = re.compile(r"\w\w+")


def _one_word_each(choices: tuple[str, ...]) -> bool:
    """Distinct one-word choices of 2+ characters: TF-IDF then matches a choice to itself
    alone (cosine 1 against 0), so scoring it is an exact comparison."""
    words = [normalize(choice) for choice in choices]
    return len(set(words)) == len(words) and all(_WORD.fullmatch(w) for w in words)


def chance_level(task: DemonTask, image_choice: bool) -> float:
    """The expected score of a random guess on ``task`` (see the module docstring)."""
    samples = task.samples
    if task.question_type == OPEN_ENDED:
        counts = Counter(sample.response for sample in samples)
        n = len(samples)
        if n < 2:
            raise ValueError("an open-ended chance level needs at least two samples")
        total = 0.0
        for gold, n_gold in counts.items():
            for guess, n_guess in counts.items():
                pairs = n_gold * (n_guess - (gold == guess))
                if pairs:
                    total += pairs * score_open_ended(guess, gold)
        return total / (n * (n - 1))
    total = 0.0
    cache: dict[tuple[str, tuple[str, ...], str], float] = {}  # TF-IDF is slow; items repeat
    for sample in samples:
        choices = sample.choices or ()
        if image_choice:
            labels = [choice.split(":")[0] for choice in choices]
            scores = [score_image_choice(label, sample.response) for label in labels]
        else:
            scores = []
            for choice in choices:
                key = (choice, choices, sample.response)
                if key not in cache:
                    cache[key] = (
                        float(normalize(choice) == normalize(sample.response))
                        if _one_word_each(choices)
                        else score_multiple_choice(choice, choices, sample.response)
                    )
                scores.append(cache[key])
        total += sum(scores) / len(scores)
    return total / len(samples)
