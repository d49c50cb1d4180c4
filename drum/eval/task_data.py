"""``TaskData``: one task's data as an evaluation uses it, read and checked once.

``load_task_data(spec, config)`` reads the pool and the queries (with ``verify_images``, as
``drum eval`` asks, every image decoded too, so its files are read once), checks them against
the task and the evaluation's largest shot count, and keeps the pool's ``PoolExclusions``, so
every retriever of the run shares one set of image hashes. ``drum.eval.icl.check_eval`` loads
every task this way before any model runs, and the evaluation is handed the records it returned;
a file that several tasks share (one pool, three templates) is read, checked and warned about
once (``DatasetReader``). Each file's SHA-256 as read is kept (``TaskData.data_sha256``) for the
results to record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from drum.data.example import Example
from drum.data.jsonl import read_examples, require_references, validate_dataset
from drum.eval.icl_config import ICLEvalConfig
from drum.retrieve.retriever import PoolExclusions
from drum.tasks.spec import TaskSpec
from drum.utils.fingerprint import sha256_file


@dataclass(frozen=True)
class TaskData:
    """A task's spec, its pool, its queries (the first ``max_queries``) and the pool rows
    each query must not see; checked for ``max_queries`` and ``max_shots``.

    Example::

        data = load_task_data(spec, ICLEvalConfig(strategies=("random",), shots=(0, 4)))
        len(data.queries), data.exclusions.rows(data.queries[0])
    """

    spec: TaskSpec
    pool: list[Example]
    queries: list[Example]
    exclusions: PoolExclusions
    max_queries: int | None
    max_shots: int
    # SHA-256 of the pool and queries files as read ({"pool": ..., "queries": ...}): the
    # results record it, and ``drum report`` warns when the files no longer match.
    data_sha256: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    def fits(self, config: ICLEvalConfig) -> bool:
        """Whether this record was loaded and checked for ``config``'s queries and shots."""
        return self.max_queries == config.max_queries and self.max_shots == config.max_shots


@dataclass
class DatasetReader:
    """Reads each (file, require_answers) once and hands every later caller the same examples:
    tasks that share a file share its read, its image decoding and its warnings."""

    verify_images: bool = False
    _read: dict[tuple[Path, bool], list[Example]] = field(default_factory=dict)

    def __call__(self, path: Path, require_answers: bool = False) -> list[Example]:
        key = (Path(path).resolve(), require_answers)
        if key not in self._read:
            if self.verify_images:
                self._read[key] = validate_dataset(path, require_answers=require_answers)
            else:
                self._read[key] = read_examples(
                    path, verify_images=False, require_answers=require_answers
                )
        return self._read[key]


def load_task_data(
    spec: TaskSpec,
    config: ICLEvalConfig,
    verify_images: bool = False,
    reader: DatasetReader | None = None,
) -> TaskData:
    """Read and check ``spec``'s data for ``config`` (``ValueError`` for data the run cannot
    use: ``DataError`` naming the line of a pool example without answers, or counting the
    queries without references; examples of another task type; no queries; more shots than
    some query has pool examples to show once itself and its copies are excluded).

    ``verify_images``: read each file as ``validate_dataset`` does (every image decoded, an
    empty file a ``DataError``), the checks every CLI command runs before a model loads.
    ``reader``: one shared by several tasks reads a file they share once (its
    ``verify_images`` then applies)."""
    read = reader or DatasetReader(verify_images)
    digests = {"pool": sha256_file(spec.pool), "queries": sha256_file(spec.queries)}
    pool = read(spec.pool, require_answers=True)
    queries = read(spec.queries)
    require_references(spec.queries, queries)
    queries = queries[: config.max_queries]
    for name, examples in (("pool", pool), ("queries", queries)):
        wrong = {example.task for example in examples} - {spec.task_type}
        if wrong:
            raise ValueError(
                f"task {spec.name!r} is {spec.task_type!r} but its {name} hold {sorted(wrong)}"
            )
    if not queries:
        raise ValueError(f"task {spec.name!r}: no queries in {spec.queries}")
    data = TaskData(
        spec, pool, queries, PoolExclusions(pool), config.max_queries, config.max_shots, digests
    )
    _check_shots(data)
    return data


def _check_shots(data: TaskData) -> None:
    """``ValueError`` unless every query has ``max_shots`` pool examples to show once itself
    and its identical copies are excluded (as the retriever excludes them)."""
    pool, queries, max_shots = data.pool, data.queries, data.max_shots
    if max_shots > len(pool):
        raise ValueError(f"task {data.name!r}: {max_shots} shots exceed its pool of {len(pool)}")
    if max_shots == 0:
        return
    excluded = [len(data.exclusions.rows(query)) for query in queries]
    worst = max(range(len(queries)), key=excluded.__getitem__)
    if max_shots > len(pool) - excluded[worst]:
        raise ValueError(
            f"task {data.name!r}: {max_shots} shots exceed the {len(pool) - excluded[worst]} "
            f"pool examples left for query {queries[worst].id!r} once the query itself and "
            f"examples of identical content are excluded (pool of {len(pool)}, "
            f"{excluded[worst]} excluded)"
        )
