"""Index benchmark: wrapper overhead over raw FAISS, and IVF speed-up / recall over exact search.

A pool of ``--n`` unit vectors from a Gaussian mixture (clustered, like real embeddings) and
``--queries`` queries from the same mixture, top-10 by inner product:

(a) exact search through ``VectorIndex`` ("Flat") vs a raw ``faiss.IndexFlatIP``: the ratio
    wrapper/raw (aim <= 1.5);
(b) ``VectorIndex`` with an IVF factory, trained on a subsample, at several nprobe values: the
    speed-up over exact search and recall@10 against it (aim >= 20x at recall@10 >= 0.95);
(c) memory: ``VectorIndex`` with an IVF-PQ factory (``IVF<nlist>,PQ64np``, 64 bytes a vector)
    and exact re-ranking of its top k' from the stored vectors, saved and loaded so that the
    vectors are a memory-mapped ``vectors.npy``: the FAISS index's size (serialised bytes,
    what it holds in RAM) as a fraction of the flat index, recall@10 and speed-up over exact
    search at several nprobe x k' (aim: <= 1/8 of the flat memory at recall@10 >= 0.95).

Usage: ``python benchmarks/bench_index.py [--quick] [--parts exact ivf pq] [--n N] [--dim D]``.
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import numpy as np
from common import report, timeit

from drum.index import IndexConfig, VectorIndex

K = 10
AIM_WRAPPER_RATIO = 1.5
AIM_SPEEDUP = 20.0
AIM_RECALL = 0.95
AIM_MEMORY_FRACTION = 1 / 8
PARTS = ("exact", "ivf", "pq")


def mixture(
    n: int,
    centres: np.ndarray,
    noise: float,
    seed: int,
    threads: int,
    chunk: int = 1 << 15,
) -> np.ndarray:
    """``n`` L2-normalised float32 rows ``centre + noise * N(0, I)``, filled in parallel.

    numpy releases the GIL in its random fills and large ufuncs, so plain threads, each with
    its own generator stream and row range, scale with cores.
    """
    out = np.empty((n, centres.shape[1]), dtype=np.float32)
    bounds = np.linspace(0, n, threads + 1).astype(int)
    streams = np.random.SeedSequence(seed).spawn(threads)

    def fill(part: int) -> None:
        rng = np.random.default_rng(streams[part])
        for start in range(bounds[part], bounds[part + 1], chunk):
            block = out[start : min(start + chunk, bounds[part + 1])]
            rng.standard_normal(out=block, dtype=np.float32)
            block *= noise
            block += centres[rng.integers(0, len(centres), len(block))]
            block /= np.linalg.norm(block, axis=1, keepdims=True)

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(fill, range(threads)))
    return out


def recall_at_k(approx: np.ndarray, exact: np.ndarray) -> float:
    """Mean fraction of each exact top-k found in the approximate top-k."""
    hits = sum(len(set(a) & set(e)) for a, e in zip(approx.tolist(), exact.tolist(), strict=True))
    return hits / exact.size


def time_interleaved(fns: list[Callable[[], object]], repeat: int) -> list[float]:
    """Best-of times of several functions, alternated so that load from other processes on a
    shared machine hits all of them alike."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for slot, fn in enumerate(fns):
            best[slot] = min(best[slot], timeit(fn, 1))
    return best


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: --n 100000, repeat 1")
    parser.add_argument("--n", type=int, default=None, help="pool size (default 1,000,000)")
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--centres", type=int, default=2000, help="mixture components")
    parser.add_argument("--noise", type=float, default=0.03, help="per-dimension noise std")
    parser.add_argument("--nlist", type=int, help="IVF lists (default 4096; 1024 with --quick)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32])
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which of (a) (b) (c)"
    )
    parser.add_argument("--pq", type=int, default=64, help="PQ sub-quantizers (bytes a vector)")
    parser.add_argument("--pq-nprobe", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument(
        "--rerank", type=int, nargs="+", default=[0, 50, 100, 200], help="k' values (0: PQ alone)"
    )
    parser.add_argument("--workdir", default=None, help="where the PQ index is saved (a temp dir)")
    parser.add_argument("--repeat", type=int, default=None, help="best-of repeats (default 3)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strict", action="store_true", help="exit 1 when an aim is missed")
    args = parser.parse_args(argv)
    args.n = args.n or (100_000 if args.quick else 1_000_000)
    args.nlist = args.nlist or (1024 if args.quick else 4096)
    args.repeat = args.repeat or (1 if args.quick else 3)
    return args


def _row(case: str, seconds: float, queries: int, **extra: object) -> dict:
    return {"case": case, "seconds": seconds, "qps": queries / seconds, **extra}


def bench_exact(
    raw: faiss.IndexFlatIP,
    pool: np.ndarray,
    queries: np.ndarray,
    ids: list[str],
    args: argparse.Namespace,
) -> tuple[list[dict], np.ndarray, dict]:
    """Rows for (a), the exact top-k labels, and facts for meta; the wrapper dies on return."""
    flat = VectorIndex(args.dim, IndexConfig("Flat", "ip"))
    start = time.perf_counter()
    flat.add(pool, ids)
    add_s = time.perf_counter() - start
    raw_scores, raw_labels = raw.search(queries, K)
    flat_scores, exact = flat.search(queries, K)
    identical = np.array_equal(raw_labels, exact) and np.array_equal(raw_scores, flat_scores)
    # The searches above doubled as a warm-up (page faults, thread pools) for these.
    raw_s, flat_s, ids_s = time_interleaved(
        [
            lambda: raw.search(queries, K),
            lambda: flat.search(queries, K),
            lambda: flat.search_ids(queries, K),
        ],
        args.repeat,
    )
    q = len(queries)
    rows = [
        _row("exact raw IndexFlatIP", raw_s, q, nprobe=None, vs_raw=1.0),
        _row("exact VectorIndex.search", flat_s, q, nprobe=None, vs_raw=flat_s / raw_s),
        _row("exact VectorIndex.search_ids", ids_s, q, nprobe=None, vs_raw=ids_s / raw_s),
    ]
    return rows, exact, {"flat_add_s": add_s, "wrapper_results_identical_to_raw": bool(identical)}


def train_and_fill(
    index: VectorIndex, pool: np.ndarray, ids: list[str], nlist: int, seed: int
) -> tuple[int, float, float]:
    """Train ``index`` on a subsample of ``pool`` (64 vectors per IVF list, drawn with
    ``seed``), add the whole pool; ``(training sample size, train seconds, add seconds)``."""
    # ~40 points per list is FAISS's floor for a warning-free k-means; 64 gives a margin.
    train_n = min(len(pool), 64 * nlist)
    sample = pool[np.random.default_rng(seed).choice(len(pool), train_n, replace=False)]
    start = time.perf_counter()
    index.train(sample)
    train_s = time.perf_counter() - start
    del sample
    start = time.perf_counter()
    index.add(pool, ids)
    return train_n, train_s, time.perf_counter() - start


def bench_ivf(
    raw: faiss.IndexFlatIP,
    pool: np.ndarray,
    queries: np.ndarray,
    ids: list[str],
    exact: np.ndarray,
    args: argparse.Namespace,
) -> tuple[list[dict], dict]:
    """Rows for (b), one per nprobe, and facts for meta.

    Exact search is timed again here, interleaved with the IVF searches, so that each speed-up
    compares timings taken under the same load.
    """
    factory = f"IVF{args.nlist},Flat"
    ivf = VectorIndex(args.dim, IndexConfig(factory, "ip"))
    train_n, train_s, add_s = train_and_fill(ivf, pool, ids, args.nlist, args.seed + 3)
    space = faiss.ParameterSpace()

    def search_at(nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        # Same effect as IndexConfig(nprobe=...) without rebuilding the index per value.
        space.set_index_parameter(ivf.faiss_index, "nprobe", nprobe)
        return ivf.search(queries, K)

    recalls = [recall_at_k(search_at(nprobe)[1], exact) for nprobe in args.nprobe]
    exact_s, *ivf_s = time_interleaved(
        [lambda: raw.search(queries, K)]
        + [lambda nprobe=nprobe: search_at(nprobe) for nprobe in args.nprobe],
        args.repeat,
    )
    rows = [
        _row(
            f"{factory} VectorIndex.search",
            seconds,
            len(queries),
            nprobe=nprobe,
            speedup=exact_s / seconds,
            **{f"recall@{K}": recall},
        )
        for nprobe, seconds, recall in zip(args.nprobe, ivf_s, recalls, strict=True)
    ]
    facts = {"ivf_factory": factory, "ivf_train_n": train_n, "exact_s_in_ivf_phase": exact_s}
    return rows, {**facts, "ivf_train_s": train_s, "ivf_add_s": add_s}


def mapped_rss_bytes(path: str) -> int | None:
    """Resident bytes of this process's mappings of ``path`` (``Rss`` in /proc/self/smaps):
    the pages of a memory-mapped file that searches have touched (clean file-backed pages,
    which the kernel may drop under memory pressure). None where smaps is unavailable."""
    try:
        lines = open("/proc/self/smaps", encoding="utf-8").read().splitlines()
    except OSError:
        return None
    total, inside = 0, False
    for line in lines:
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5 and ":" in fields[3]:
            inside = len(fields) >= 6 and fields[5] == path  # a mapping's header line
        elif inside and fields[:1] == ["Rss:"]:
            total += int(fields[1]) * 1024
    return total


def bench_pq(
    raw: faiss.IndexFlatIP,
    pool: np.ndarray,
    queries: np.ndarray,
    ids: list[str],
    exact: np.ndarray,
    args: argparse.Namespace,
) -> tuple[list[dict], dict]:
    """Rows for (c), one per (nprobe, k'), and facts for meta.

    The index is built with ``rerank``, saved and loaded again, and the loaded one is searched:
    its re-rank vectors are then the memory-mapped ``vectors.npy`` as in any later use, not the
    in-RAM copy made while building. ``rerank=k'`` per call varies the depth on one index.
    """
    factory = f"IVF{args.nlist},PQ{args.pq}np"
    depth = max(args.rerank)
    config = IndexConfig(factory, "ip", rerank=depth if depth > 0 else None)
    built = VectorIndex(args.dim, config)
    train_n, train_s, add_s = train_and_fill(built, pool, ids, args.nlist, args.seed + 4)
    with tempfile.TemporaryDirectory(prefix="bench_pq_", dir=args.workdir) as workdir:
        start = time.perf_counter()
        built.save(workdir)
        save_s = time.perf_counter() - start
        del built
        gc.collect()
        start = time.perf_counter()
        pq = VectorIndex.load(workdir)
        load_s = time.perf_counter() - start
        vectors_path = pq.rerank_vectors_path
        vectors_file_bytes = None if vectors_path is None else vectors_path.stat().st_size
        index_file_bytes = (Path(workdir) / "index.faiss").stat().st_size
        pq_bytes = pq.index_bytes()
        # A flat index serialises as a small header plus ntotal * dim float32 codes.
        flat_bytes = int(faiss.serialize_index(faiss.IndexFlatIP(args.dim)).size) + int(
            raw.ntotal * raw.code_size
        )
        space = faiss.ParameterSpace()
        settings = [(nprobe, rerank) for nprobe in args.pq_nprobe for rerank in args.rerank]

        def search_at(nprobe: int, rerank: int) -> tuple[np.ndarray, np.ndarray]:
            space.set_index_parameter(pq.faiss_index, "nprobe", nprobe)
            return pq.search(queries, K, rerank=rerank)

        results = [search_at(nprobe, rerank) for nprobe, rerank in settings]
        recalls = [recall_at_k(labels, exact) for _, labels in results]
        # Re-ranked scores are exact inner products of the returned ids.
        max_score_error = (
            max(
                float(
                    np.abs(scores - np.einsum("qkd,qd->qk", pool[labels], queries))[
                        labels >= 0
                    ].max()
                )
                for (scores, labels), (_, rerank) in zip(results, settings, strict=True)
                if rerank
            )
            if any(rerank for _, rerank in settings)
            else None
        )
        exact_s, *pq_s = time_interleaved(
            [lambda: raw.search(queries, K)]
            + [lambda setting=setting: search_at(*setting) for setting in settings],
            args.repeat,
        )
        rss = None if vectors_path is None else mapped_rss_bytes(str(vectors_path))
    rows = [
        _row(
            f"{factory} + rerank" if rerank else f"{factory} alone",
            seconds,
            len(queries),
            nprobe=nprobe,
            rerank=rerank,
            speedup=exact_s / seconds,
            **{f"recall@{K}": recall},
            index_bytes=pq_bytes,
            flat_fraction=pq_bytes / flat_bytes,
        )
        for (nprobe, rerank), seconds, recall in zip(settings, pq_s, recalls, strict=True)
    ]
    facts = {
        "pq_factory": factory,
        "pq_train_n": train_n,
        "pq_train_s": train_s,
        "pq_add_s": add_s,
        "pq_save_s": save_s,
        "pq_load_s": load_s,
        "pq_index_bytes": pq_bytes,
        "pq_index_file_bytes": index_file_bytes,
        "flat_index_bytes": flat_bytes,
        "pq_flat_fraction": pq_bytes / flat_bytes,
        "rerank_vectors": "memory-mapped vectors.npy (float32), read only for the k' candidates",
        "rerank_vectors_file_bytes": vectors_file_bytes,
        # What FAISS's IndexRefineFlat (",RFlat") would hold in RAM: the codes plus every vector.
        "flat_fraction_if_vectors_in_ram": (pq_bytes + (vectors_file_bytes or 0)) / flat_bytes,
        "rerank_vectors_resident_bytes_after_searches": rss,
        "max_abs_rerank_score_error": max_score_error,
        "exact_s_in_pq_phase": exact_s,
    }
    return rows, facts


def check_aims(rows: list[dict], parts: list[str]) -> dict:
    """Each aim of the parts run, with its measured value and whether it was met."""
    aims: dict[str, dict] = {}
    if "exact" in parts:
        ratio = next(r for r in rows if r["case"] == "exact VectorIndex.search")["vs_raw"]
        aims["wrapper_over_raw"] = {
            "aim": f"<= {AIM_WRAPPER_RATIO}",
            "value": ratio,
            "met": ratio <= AIM_WRAPPER_RATIO,
        }
    good = [r for r in rows if (r.get(f"recall@{K}") or 0.0) >= AIM_RECALL]
    if "ivf" in parts:
        ivf = [r for r in good if "rerank" not in r]
        best = max(ivf, key=lambda r: r["speedup"], default=None)
        aims["ivf_speedup_at_recall"] = {
            "aim": f">= {AIM_SPEEDUP}x at recall@{K} >= {AIM_RECALL}",
            "value": None if best is None else best["speedup"],
            "nprobe": None if best is None else best["nprobe"],
            "met": best is not None and best["speedup"] >= AIM_SPEEDUP,
        }
    if "pq" in parts:
        small = [r for r in good if "rerank" in r and r["flat_fraction"] <= AIM_MEMORY_FRACTION]
        best = max(small, key=lambda r: r["speedup"], default=None)
        fraction = next((r["flat_fraction"] for r in rows if "rerank" in r), None)
        aims["pq_memory_at_recall"] = {
            "aim": f"<= 1/8 of the flat index's memory at recall@{K} >= {AIM_RECALL}",
            "value": fraction,
            "nprobe": None if best is None else best["nprobe"],
            "rerank": None if best is None else best["rerank"],
            f"recall@{K}": None if best is None else best[f"recall@{K}"],
            "speedup": None if best is None else best["speedup"],
            "met": best is not None,
        }
    return aims


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    faiss.omp_set_num_threads(args.threads)

    start = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.centres, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    pool = mixture(args.n, centres, args.noise, args.seed + 1, args.threads)
    queries = mixture(args.queries, centres, args.noise, args.seed + 2, args.threads)
    ids = [f"ex{i:07d}" for i in range(args.n)]
    generate_s = time.perf_counter() - start

    raw = faiss.IndexFlatIP(args.dim)
    raw.add(pool)
    rows: list[dict] = []
    facts: dict = {}
    if "exact" in args.parts:
        part_rows, exact, part_facts = bench_exact(raw, pool, queries, ids, args)
        rows += part_rows
        facts.update(part_facts)
    else:
        exact = raw.search(queries, K)[1]
    gc.collect()
    for part, bench in (("ivf", bench_ivf), ("pq", bench_pq)):
        if part in args.parts:
            part_rows, part_facts = bench(raw, pool, queries, ids, exact, args)
            rows += part_rows
            facts.update(part_facts)
            gc.collect()
    aims = check_aims(rows, args.parts)
    meta = {
        "n": args.n,
        "dim": args.dim,
        "queries": args.queries,
        "k": K,
        "centres": args.centres,
        "noise": args.noise,
        "threads": args.threads,
        "faiss_omp_threads": faiss.omp_get_max_threads(),
        "repeat": args.repeat,
        "quick": args.quick,
        "seed": args.seed,
        "generate_s": generate_s,
        "parts": args.parts,
        "pq_nprobe": args.pq_nprobe,
        "rerank": args.rerank,
        **facts,
        "aims": aims,
    }
    name = "index_quick" if args.quick else "index"
    if sorted(args.parts) != sorted(PARTS):
        name += "_" + "_".join(part for part in PARTS if part in args.parts)
    report(name, rows, meta)
    missed = [name for name, aim in aims.items() if not aim["met"]]
    if missed:
        print(f"aims missed: {missed}", file=sys.stderr)
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
