"""DEMON's three per-sample scorers and the reference's routing between them.

Reference: ``DCDmllm/Cheetah`` (commit 619bd61), ``DEMON Benchmark/scripts/evaluate.py``
(``Eval.evaluate_rouge``, ``judge_multi_choice``, ``evaluate_multi_choice_image`` and the
routing at the bottom of the script). Every text is first ``normalize``d. Values agree with the
reference's own outputs (``tests/demon/fixtures``); where the reference crashes we raise
``DemonScoringError`` naming the sample, or score as documented in each function.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from drum.demon.categories import MULTI_CHOICE, OPEN_ENDED, TASK_QUESTION_TYPES
from drum.demon.normalize import normalize
from drum.demon.rouge import rouge_l_f, split_sentences

IMAGE_CHOICE_TASKS: frozenset[str] = frozenset(
    {"COMICS_Panel", "RecipeQA_ImageCoherence", "RecipeQA_VisualCloze"}
)
"""Tasks scored by ``score_image_choice``. The reference lists
``"recipeqa-RecipeQA_VisualCloze"``, which never equals a task name, so its VisualCloze goes
through TF-IDF matching instead, where "image a".."image d" are all the single token "image"
(one-letter words are not tokens), every option ties, and only samples whose answer is the
first option count as correct. Fixed here: VisualCloze is an image-choice task."""

_REGISTERED_IMAGE_CHOICE_TASKS: set[str] = set()
"""Task names beyond the reference's that ``score_sample`` routes to image choice; filled by
``register_image_choice_task`` (the built-in kit registers its own, ``drum.builtin.demon``)."""

IMAGE_MENTIONS: tuple[str, ...] = ("image a", "image b", "image c", "image d")

Answer = str | int


class DemonScoringError(ValueError):
    """A sample the reference cannot score (it would crash on it): the message names the task
    and sample when ``score_sample`` knows them."""


def register_image_choice_task(name: str) -> None:
    """Route the task ``name`` to ``score_image_choice`` ("Image B" answers), as the reference
    routes its own ``IMAGE_CHOICE_TASKS`` by name. Registering a name twice is harmless.

    Example::

        register_image_choice_task("WhichImage")   # what drum.builtin.demon does on import
        score_sample("WhichImage", "multi-choice", "image b", "Image B", choices)   # 1.0

    Raises:
        ValueError: ``name`` is one of DEMON's own tasks that the reference scores otherwise
            (re-routing it would change the benchmark's scores).
    """
    if name in TASK_QUESTION_TYPES and name not in IMAGE_CHOICE_TASKS:
        raise ValueError(
            f"{name!r} is a DEMON task the reference does not score by image choice; "
            "an image-choice task needs a name of its own"
        )
    _REGISTERED_IMAGE_CHOICE_TASKS.add(name)


def routed_image_choice_tasks() -> frozenset[str]:
    """What ``score_sample`` routes to ``score_image_choice`` by default: the reference's
    ``IMAGE_CHOICE_TASKS`` and every registered name."""
    return IMAGE_CHOICE_TASKS | frozenset(_REGISTERED_IMAGE_CHOICE_TASKS)


def _text(value: Answer, what: str) -> str:
    """Responses and choices may be JSON integers (Fashion200K's responses are): compared as
    their decimal text. The reference calls ``.replace`` on them and crashes."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise DemonScoringError(f"{what} must be a string or an integer, got {value!r}")


def score_open_ended(prediction: str, response: Answer) -> float:
    """``Eval.evaluate_rouge`` for one sample: ``rouge_l_f(normalize(prediction),
    normalize(response))``, 0.0 for an empty normalised prediction.

    Most answers have at most 32 periods, all of which ``normalize`` removes, so the package's
    sentence split sees one sentence per side; longer ones keep their later periods and are
    scored summary-level. Fixed, not kept: a prediction of only periods (33 or more) scores 0.0
    where the package raises, and texts long enough to exhaust the package's recursion limit
    get the value it would give with an unlimited stack.

    Raises:
        DemonScoringError: the normalised response is empty (the reference's
            ``assert gt_ans != ''``) or only periods (the package's ``ValueError``; against an
            empty prediction the reference scores that one 0 without calling the package).
    """
    reference = normalize(_text(response, "the response"))
    if not split_sentences(reference):
        raise DemonScoringError(f"the ground truth {response!r} is empty after normalisation")
    hypothesis = normalize(prediction)
    if hypothesis == "":
        return 0.0
    return rouge_l_f(hypothesis, reference)


def score_multiple_choice(
    prediction: str,
    choices: Sequence[Answer],
    response: Answer,
    exact_match_first: bool = False,
) -> float:
    """``Eval.judge_multi_choice``: 1.0 if the option most TF-IDF-similar to the prediction is
    the response, else 0.0.

    Prediction, options and response are normalised; a ``TfidfVectorizer()`` with scikit-learn's
    defaults (lowercase, tokens of 2+ word characters, smoothed idf, l2 norm) is fitted on
    ``[prediction, *options]`` and the option of highest cosine to the prediction is chosen,
    the first one on ties (``argmax``). Consequences kept from the reference: one-letter
    options ("a", "4") are invisible; a prediction sharing no token with any option (an empty
    one included) ties everywhere and picks the first option. When the vocabulary is empty
    (every text has only one-character words) the reference's bare ``except`` falls back to
    exact match of prediction and response.

    Args:
        exact_match_first: not the reference. If the normalised prediction is exactly one of
            the options, choose it without TF-IDF (what the DEMON README describes, not what
            its code does). Off by default.

    Raises:
        DemonScoringError: the response is not among the choices after normalisation (the
            reference's ``assert gt_ans in choice_list``, reached for every sample it routes
            here: it stops the reference's whole task, so it stops this task's scoring too).
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    gold = normalize(_text(response, "the response"))
    options = [normalize(_text(choice, "a choice")) for choice in choices]
    pred = normalize(prediction)
    if gold not in options:
        raise DemonScoringError(
            f"the response {gold!r} is not among the choices {options!r} after normalisation: "
            "the reference's evaluate.py stops at its assert gt_ans in choice_list and scores "
            "no sample of the task"
        )
    if exact_match_first and pred in options:
        return float(pred == gold)
    try:
        matrix = TfidfVectorizer().fit_transform([pred, *options])
    except ValueError:  # "empty vocabulary": the only error the reference's bare except meets
        return float(pred == gold)
    similarities = cosine_similarity(matrix[0:1], matrix[1:]).flatten()
    return float(options[int(similarities.argmax())] == gold)


def score_image_choice(prediction: str, response: Answer) -> float:
    """``Eval.evaluate_multi_choice_image`` for one sample ("Image B"-style answers).

    After normalisation: 1.0 if the first 7 characters of prediction and response are equal
    ("image b, the dog" matches "Image B"; "the answer is image b" does not), but 0.0 if the
    prediction contains more than one of "image a".."image d" as substrings (each counted once;
    "image b is an image about" mentions two, "image a" in "image about").
    """
    gold = normalize(_text(response, "the response"))
    pred = normalize(prediction)
    if sum(mention in pred for mention in IMAGE_MENTIONS) > 1:
        return 0.0
    return float(gold[:7] == pred[:7])


def score_sample(
    task: str,
    question_type: str,
    prediction: str,
    response: Answer,
    choices: Sequence[Answer] | None = None,
    *,
    sample_id: object = None,
    exact_match_first: bool = False,
    image_choice_tasks: Collection[str] | None = None,
) -> float:
    """Score one DEMON sample as ``evaluate.py`` routes it.

    ``question_type`` is the task's ``metadata.question_type``: ``"open-ended"`` ->
    ``score_open_ended``; ``"multi-choice"`` -> ``score_image_choice`` for the tasks in
    ``image_choice_tasks`` (default ``routed_image_choice_tasks()``: the reference's
    ``IMAGE_CHOICE_TASKS`` and the registered ones), else ``score_multiple_choice`` over
    ``choices``. An empty question type falls back to ``TASK_QUESTION_TYPES`` (ALFRED's release
    metadata has ``""``, which the reference skips as "Dataset not supported"; it is scored
    open-ended here). ``read_demon_task`` reads an empty type as ``open-ended`` already, and
    ``drum.demon.data_report`` says so once per task; this fallback serves direct callers.

    Raises:
        DemonScoringError: naming ``task`` and ``sample_id``, for a sample the reference would
            crash on (empty ground truth, response not among the choices, a response that is
            neither text nor integer), a multi-choice sample without choices, or an unsupported
            question type.
    """
    kind = question_type or TASK_QUESTION_TYPES.get(task, "")
    try:
        if kind == OPEN_ENDED:
            return score_open_ended(prediction, response)
        if kind == MULTI_CHOICE:
            routed = (
                routed_image_choice_tasks() if image_choice_tasks is None else image_choice_tasks
            )
            if task in routed:
                return score_image_choice(prediction, response)
            if choices is None:
                raise DemonScoringError("a multi-choice sample needs its choice list")
            return score_multiple_choice(
                prediction, choices, response, exact_match_first=exact_match_first
            )
        raise DemonScoringError(
            f"unsupported question type {question_type!r} (expected {OPEN_ENDED!r} or "
            f"{MULTI_CHOICE!r})"
        )
    except DemonScoringError as err:
        raise DemonScoringError(f"DEMON task {task!r}, sample {sample_id!r}: {err}") from None
