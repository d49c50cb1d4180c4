"""DEMON prompts, laid out as the reference inference script lays them out.

What ``Cheetah/i4_cheetah_llama2.py`` (``IDataset.__getitem__``) does, character for
character::

    text = task_instruction[task_instruction_id] + context            # no separator
    if "choice_list" in task_instance:
        text += "Choice list:['" + "', '".join(choice_list) + "']. Your answer is:"
    for k in 1..len(images_path): text = text.replace("{image#k}", "<ImageHere>")
                                  text = text.replace("{table#k}", "<ImageHere>")

So the instruction runs straight into the context (most instructions end with a space, some
do not: "...the Choice List.{image#1}"), the choice list is printed Python-style in single
quotes, unescaped, after "Choice list:" with no space, and ends "Your answer is:" with no
trailing space. The issue's ``Choice list: [...]`` has a space the code does not. Placeholders
are replaced everywhere in that text (so ``'Image A: {image#5}'`` inside a choice becomes an
image), and only those with ``1 <= k <= len(images_path)``; any other stays as literal text.
Every README example also writes its choices into ``context``; an item that had a
``choice_list`` as well would show its choices twice, in the reference and here alike.

``Chat.batch_answer`` then splits the text at ``<ImageHere>``, drops the pieces that are empty
or whitespace only, keeps the others verbatim, and gives the i-th ``<ImageHere>`` the i-th
image of ``images_path``; it joins pieces and images with single spaces inside one user turn
of the Llama-2 chat template (empty system prompt).

``demon_prompt`` returns that one user turn as parts: the same text pieces (verbatim, blank
ones dropped), each image where its placeholder stands. Where DRUM differs:

- the image at a placeholder is ``images_path[k-1]``, by its number k; the reference takes
  images in list order, one per placeholder met. The two agree whenever the placeholders run
  1..n, once each, as in every README example. A placeholder repeated shows its image again
  here; images that no placeholder names are shown after the text, in order (the reference
  appends one such last image the same way and fails an assertion on more);
- the turn is rendered by each backend's own chat template, not Cheetah's Llama-2 one and its
  single-space joins;
- DRUM decodes greedily. The reference samples (``do_sample=True``, ``top_p=0.9``,
  ``temperature=1.0``, up to 300 new tokens) and never seeds (``setup_seeds`` is defined
  but not called), so its predictions cannot be reproduced run to run.
"""

from __future__ import annotations

from drum.demon.format import PLACEHOLDER, DemonSample, DemonTask
from drum.lvlm.prompt import ICLPrompt, ImagePart, Part, TextPart, Turn

CHOICES_PREFIX = "Choice list:['"
CHOICES_SEPARATOR = "', '"
CHOICES_SUFFIX = "']. Your answer is:"


def demon_text(task: DemonTask, sample: DemonSample) -> str:
    """The reference's prompt text with its placeholders still in: the task instruction, the
    context, then the choice list when the sample has one.

    Example::

        demon_text(task, sample)
        # "...answer the question. {image#1}Question: ...Choice list:['a', 'b']. Your answer is:"
    """
    text = task.instructions[sample.instruction_id] + sample.context
    if sample.choices is not None:
        text += CHOICES_PREFIX + CHOICES_SEPARATOR.join(sample.choices) + CHOICES_SUFFIX
    return text


def demon_prompt(task: DemonTask, sample: DemonSample) -> ICLPrompt:
    """The zero-shot prompt for ``sample``: one user turn whose text pieces and images
    interleave where the placeholders stand (see the module docstring for what the reference
    does and where this differs).

    Example::

        prompt = demon_prompt(task, task.samples[0])
        prompt.query.parts   # (TextPart('Global Table: '), ImagePart(.../0.png), ...)
        lvlm.generate([prompt], max_new_tokens=300)
    """
    text = demon_text(task, sample)
    n_images = len(sample.images)
    parts: list[Part] = []
    shown: set[int] = set()
    start = 0

    def add_text(piece: str) -> None:
        # The reference drops the pieces between placeholders that hold only whitespace.
        if piece.strip():
            parts.append(TextPart(piece))

    for match in PLACEHOLDER.finditer(text):
        k = int(match[1])
        if not 1 <= k <= n_images:
            continue  # the reference leaves it in the text
        add_text(text[start : match.start()])
        parts.append(ImagePart(sample.images[k - 1]))
        shown.add(k - 1)
        start = match.end()
    add_text(text[start:])
    parts.extend(ImagePart(image) for i, image in enumerate(sample.images) if i not in shown)
    if not parts:
        parts.append(TextPart(text))  # an all-blank text and no image: still a turn
    return ICLPrompt(demos=(), query=Turn(tuple(parts)))
