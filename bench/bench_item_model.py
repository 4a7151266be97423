"""The item model's scoring, training and serving costs, with the user-user recommender it replaced as the baseline.

    python -m bench.bench_item_model scoring  [--ratings 981756,6000000] [--batches 30] [--singles 300] [--profile]
    python -m bench.bench_item_model training [--ratings 981756,6000000] [--runs 3] [--knn-books 50000 ...] [--skip-sqlite]
    python -m bench.bench_item_model serving  [--ratings 981756,6000000] [--runs 5]
    python -m bench.bench_item_model [all]    (the three, in that order; what `python -m bench --with recommender` runs)

Data is the shared synthetic generator's (adapters.synthetic_data: goodbooks-shaped, power-law
popularity, log-normal activity, latent tastes), 53,424 users x 10,000 books by default,
generated once per shape and cached as .npz under --data-dir (bench/results/ by default),
with the item models trained on it (LocalModelStore directories, keyed by the source of
domain/item_model.py so that a changed trainer retrains). The smaller flags (--users, --books,
--ratings, --knn-*) make every command run in seconds (tests/bench/test_bench_smoke.py).

Every measurement that reports memory runs in a fresh subprocess of its own and reads its
peak from /proc/self/status (VmHWM: this process's own high-water mark; ru_maxrss can carry
the parent's over a fork and exec). CPU time is `time.process_time` (every thread of the
process); wall time is `time.perf_counter`. The machine these run on is shared, so the
tables give medians, and the load average at the start and end of each command.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import hashlib
import io
import json
import multiprocessing
import os
import platform
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import scipy

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]
MODULE = "bench.bench_item_model"
USERS, BOOKS, SEED = 53_424, 10_000, 7
RATINGS = (981_756, 6_000_000)  # goodbooks-10k's older release (~1M) and the full data set's size (~6M)
KNN_USERS, KNN_BOOKS, KNN_RATINGS = 100_000, 50_000, 3_000_000
BATCH = 100
MAX_RECOMMENDATIONS = 50  # Settings.max_recommendations' default, and RecommenderParams'
EPOCH = datetime(2020, 1, 1, tzinfo=timezone.utc)
MB = 1024 * 1024
TARGETS = {
    "batch": 0.3e-3,  # CPU seconds per user, batches of 100, at ~1M ratings
    "single": 1e-3,  # CPU seconds, one user
    "train_wall": 60.0,  # seconds, ~1M ratings, this 2-core machine
    "train_peak": 3 * 1024 * MB,
}


# --- data and models --------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    users: int
    books: int
    ratings: int
    seed: int = SEED

    @property
    def key(self) -> str:
        return f"{self.users}x{self.books}x{self.ratings}-seed{self.seed}"

    @property
    def label(self) -> str:
        return f"{self.ratings:,} ratings, {self.users:,} users x {self.books:,} books"


def columns_of(shape: Shape, data_dir: Path):  # noqa: ANN201 - domain.models.RatingColumns
    """The synthetic ratings of this shape as RatingColumns, generated on first use and cached as .npz."""
    from domain.models import RatingColumns

    path = data_dir / f"ratings-{shape.key}.npz"
    if not path.exists():
        from adapters.synthetic_data import generate

        data_dir.mkdir(parents=True, exist_ok=True)
        data = generate(shape.users, shape.books, shape.ratings, shape.seed)
        partial = path.with_suffix(f".partial-{os.getpid()}.npz")
        np.savez(partial, user_ids=data.user_ids, book_ids=data.book_ids, ratings=data.ratings)
        os.replace(partial, path)
    arrays = np.load(path)
    return RatingColumns(
        tuple(str(user) for user in range(1, shape.users + 1)),
        (arrays["user_ids"] - 1).astype(np.int32),
        arrays["book_ids"].astype(np.int32),
        arrays["ratings"].astype(np.float32),
    )


def trainer_key(params: Any) -> str:
    """Changes when domain/item_model.py or the parameters do: a cached model from other code is not reused."""
    digest = hashlib.blake2b(digest_size=6)
    digest.update((ROOT / "domain" / "item_model.py").read_bytes())
    digest.update(repr(sorted(asdict(params).items())).encode())
    return digest.hexdigest()


def model_dir(shape: Shape, data_dir: Path) -> Path:
    from domain.item_model import ItemModelParams

    return data_dir / f"model-{shape.key}-{trainer_key(ItemModelParams())}"


def published_version(shape: Shape, data_dir: Path) -> str:
    """The version of the default-params model for this shape, training and publishing it (in a child) if absent."""
    from adapters.model_store import LocalModelStore

    store = LocalModelStore(model_dir(shape, data_dir))
    version = asyncio.run(store.latest_version())
    if version is None:
        child("train", {"shape": asdict(shape), "data_dir": str(data_dir), "publish": True})
        version = asyncio.run(store.latest_version())
    assert version is not None
    return version


def load_model(root: Path, version: str):  # noqa: ANN201 - domain.item_model.ItemModel
    from adapters.model_store import LocalModelStore
    from domain.item_model import ItemModel

    return ItemModel.from_artifact(asyncio.run(LocalModelStore(root).load(version)))


def ratings_by_user(columns: Any, users: Sequence[str]) -> dict[str, list[Any]]:
    """The users' own ratings as Rating objects, as the service reads them from the store on a miss."""
    from domain.models import Rating

    codes = np.asarray(columns.user_codes)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(columns.user_ids) + 1))
    row_of = {user: row for row, user in enumerate(columns.user_ids)}
    found: dict[str, list[Any]] = {}
    for user in users:
        row = row_of[user]
        picked = order[bounds[row] : bounds[row + 1]]
        books = np.asarray(columns.book_ids)[picked].tolist()
        stars = np.asarray(columns.ratings)[picked].astype(int).tolist()
        found[user] = [Rating(user, book, star, EPOCH) for book, star in zip(books, stars)]
    return found


# --- process measurements -----------------------------------------------------------------------


def status_mb(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            found[name] = int(value.split()[0]) / 1024
    return found


def smaps_mb(pid: int, under: Path) -> dict[str, float]:
    """USS, PSS and RSS of a process (smaps_rollup), and the same of its mappings of files under `under`, in MiB."""
    rollup: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            rollup[name] = int(value.split()[0]) / 1024
    mapped = {"Rss": 0.0, "Pss": 0.0, "Private_Clean": 0.0, "Private_Dirty": 0.0, "Shared_Clean": 0.0}
    inside = False
    prefix = str(under.resolve())
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):  # a mapping's header line
            inside = len(head) >= 6 and head[5].startswith(prefix)
        elif inside and head and head[0].rstrip(":") in mapped:
            mapped[head[0].rstrip(":")] += int(head[1]) / 1024
    return {
        "uss": rollup["Private_Clean"] + rollup["Private_Dirty"],
        "pss": rollup["Pss"],
        "rss": rollup["Rss"],
        "model_rss": mapped["Rss"],
        "model_pss": mapped["Pss"],
        "model_uss": mapped["Private_Clean"] + mapped["Private_Dirty"],
    }


def timed(function: Callable[[], object]) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    started, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - started, time.process_time() - cpu


def child(task: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run one task in a fresh interpreter; its result is the JSON on its last line of output."""
    run = subprocess.run([sys.executable, "-m", MODULE, "_child", task, json.dumps(spec)],
                         capture_output=True, text=True, cwd=ROOT)
    if run.returncode != 0:
        raise RuntimeError(f"{task} failed ({run.returncode}):\n{run.stderr[-4000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


# --- child tasks ------------------------------------------------------------------------------


def task_train(spec: dict[str, Any]) -> dict[str, Any]:
    """Train once from columns in memory (as `train` gets them): wall, CPU, peak; optionally publish for the cache."""
    from domain.item_model import ItemModelParams, train

    shape, data_dir = Shape(**spec["shape"]), Path(spec["data_dir"])
    params = ItemModelParams(**spec.get("params", {}))
    before = status_mb()
    columns = columns_of(shape, data_dir)
    gc.collect()
    loaded = status_mb()
    profile = ""
    if spec.get("profile"):
        profiler = cProfile.Profile()
        wall, cpu = timed(lambda: results.append(profiler.runcall(train, columns, params)))
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        profile = out.getvalue()
    else:
        wall, cpu = timed(lambda: results.append(train(columns, params)))
    model = results.pop()
    peak = status_mb()["VmHWM"]
    if spec.get("publish"):
        from adapters.model_store import LocalModelStore

        root = model_dir(shape, data_dir)
        asyncio.run(LocalModelStore(root).publish(model.to_artifact()))
    return {
        "wall": wall, "cpu": cpu, "peak_mb": peak, "start_mb": before["VmRSS"], "columns_mb": loaded["VmRSS"],
        "algorithm": model.manifest["algorithm"], "n_books": model.n_books, "n_users": model.manifest["n_users"],
        "n_ratings": model.manifest["n_ratings"], "n_weights": int(model.weights.nnz),
        "weights_mb": (model.weights.data.nbytes + model.weights.indices.nbytes + model.weights.indptr.nbytes) / MB,
        "block_books": params.block_books, "profile": profile,
    }


results: list[Any] = []  # task_train's way out of a lambda


def task_fill_sqlite(spec: dict[str, Any]) -> dict[str, Any]:
    """Write the shape's ratings into a SQLite store once (the `bookrec train` path reads them back)."""
    from adapters.sqlite_store import open_sqlite_stores
    from domain.models import Rating

    shape, data_dir = Shape(**spec["shape"]), Path(spec["data_dir"])
    path = Path(spec["path"])
    columns = columns_of(shape, data_dir)
    ratings, catalog = open_sqlite_stores(path)

    def every_rating():  # noqa: ANN202 - a generator of Rating
        for code, book, stars in zip(columns.user_codes.tolist(), columns.book_ids.tolist(), columns.ratings.astype(int).tolist()):
            yield Rating(columns.user_ids[code], book, stars, EPOCH)

    try:
        written = asyncio.run(ratings.put_many(every_rating()))
    finally:
        ratings.close()
        catalog.close()
    return {"written": written}


def task_train_sqlite(spec: dict[str, Any]) -> dict[str, Any]:
    """What `bookrec train` does on SQLite: scan_columns, train, publish (ModelService.train_and_publish's steps)."""
    from adapters.model_store import LocalModelStore
    from adapters.sqlite_store import open_sqlite_stores
    from domain.item_model import ItemModelParams, train

    ratings, catalog = open_sqlite_stores(Path(spec["path"]))
    before = status_mb()
    try:
        with tempfile.TemporaryDirectory(dir=spec["data_dir"]) as directory:
            scan_wall, _ = timed(lambda: results.append(asyncio.run(ratings.scan_columns())))
            columns = results.pop()
            scanned = status_mb()
            train_wall, train_cpu = timed(lambda: results.append(train(columns, ItemModelParams())))
            model = results.pop()
            publish_wall, _ = timed(lambda: asyncio.run(LocalModelStore(Path(directory)).publish(model.to_artifact())))
    finally:
        ratings.close()
        catalog.close()
    return {
        "scan": scan_wall, "train": train_wall, "train_cpu": train_cpu, "publish": publish_wall,
        "total": scan_wall + train_wall + publish_wall, "start_mb": before["VmRSS"], "scanned_mb": scanned["VmRSS"],
        "peak_mb": status_mb()["VmHWM"], "n_ratings": len(columns),
    }


def task_score(spec: dict[str, Any]) -> dict[str, Any]:
    """The item model and the user-user recommender scoring the same users, taking turns, in one process."""
    from domain.item_model import ItemRecommender
    from domain.models import RecommendationSource
    from domain.user_knn import ModelSnapshot, Recommender, RecommenderParams

    shape, data_dir = Shape(**spec["shape"]), Path(spec["data_dir"])
    batches, singles, batch_size = spec["batches"], spec["singles"], spec["batch"]
    columns = columns_of(shape, data_dir)
    model = load_model(Path(spec["model_dir"]), spec["version"])
    item = ItemRecommender(MAX_RECOMMENDATIONS)
    knn_params = RecommenderParams()
    snapshot = ModelSnapshot.build(columns, knn_params)
    knn = Recommender(knn_params)

    rng = np.random.default_rng(spec.get("seed", 0))
    chosen = rng.choice(shape.users, size=min(shape.users, batches * batch_size + singles + batch_size), replace=False)
    users = [columns.user_ids[row] for row in chosen]
    fresh = ratings_by_user(columns, users)  # read "from the store" before the clock starts, as a cache miss has them
    warm, users = users[:batch_size], users[batch_size:]
    item.recommend_batch(model, warm, fresh)
    knn.recommend_batch(snapshot, warm, {})
    times: dict[str, list[tuple[float, float]]] = {"item_batch": [], "knn_batch": [], "item_single": [], "knn_single": []}
    lists: list[tuple[Any, ...]] = []

    def item_call(group: list[str]) -> Callable[[], object]:
        return lambda: lists.extend(item.recommend_batch(model, group, fresh))

    def knn_call(group: list[str]) -> Callable[[], object]:
        return lambda: knn.recommend_batch(snapshot, group, {})

    for run in range(batches):
        group = users[run * batch_size : (run + 1) * batch_size]
        pair = [("item_batch", item_call(group)), ("knn_batch", knn_call(group))]
        for name, call in pair if run % 2 == 0 else pair[::-1]:  # take turns going first
            wall, cpu = timed(call)
            times[name].append((wall / len(group), cpu / len(group)))
    for index, user in enumerate(users[batches * batch_size : batches * batch_size + singles]):
        pair = [("item_single", item_call([user])), ("knn_single", knn_call([user]))]
        for name, call in pair if index % 2 == 0 else pair[::-1]:
            times[name].append(timed(call))
    profile = ""
    if spec.get("profile"):
        profiler = cProfile.Profile()
        profiler.enable()
        for run in range(batches):
            item.recommend_batch(model, users[run * batch_size : (run + 1) * batch_size], fresh)
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(14)
        profile = out.getvalue()
    items = [entry for found in lists for entry in found]
    return {
        "times": {name: {"wall": [w for w, _ in pairs], "cpu": [c for _, c in pairs]} for name, pairs in times.items()},
        "lists": len(lists), "full_lists": sum(len(found) == MAX_RECOMMENDATIONS for found in lists),
        "collaborative_share": sum(entry.source is RecommendationSource.COLLABORATIVE for entry in items) / max(len(items), 1),
        "mean_ratings_per_user": float(np.mean([len(fresh[user]) for user in users])),
        "n_weights": int(model.weights.nnz), "n_books": model.n_books, "profile": profile,
    }


def task_start(spec: dict[str, Any]) -> dict[str, Any]:
    """A serving process's model start-up: load (verify + map) and from_artifact, then RSS once the pages are touched."""
    import domain.user_knn  # noqa: F401 - the same imports as the user-user process, so the interpreters compare
    from adapters.model_store import LocalModelStore
    from domain.item_model import ItemModel, ItemRecommender

    baseline = status_mb()["VmRSS"]
    store = LocalModelStore(Path(spec["model_dir"]))
    load_wall, _ = timed(lambda: results.append(asyncio.run(store.load(spec["version"]))))
    artifact = results.pop()
    build_wall, _ = timed(lambda: results.append(ItemModel.from_artifact(artifact)))
    model = results.pop()
    loaded = status_mb()["VmRSS"]
    touch(model)
    ItemRecommender(MAX_RECOMMENDATIONS).recommend_batch(model, *synthetic_batch(model))
    memory = status_mb()
    return {
        "load": load_wall, "from_artifact": build_wall, "start": load_wall + build_wall,
        "artifact_mb": sum(np.asarray(array).nbytes for array in artifact.arrays.values()) / MB,
        "baseline_mb": baseline, "loaded_mb": loaded, "rss_mb": memory["VmRSS"], "peak_mb": memory["VmHWM"],
        "n_ratings": model.manifest["n_ratings"], "n_weights": int(model.weights.nnz),
        "mapped": type(artifact.arrays["weights_data"]).__name__,
    }


def task_hold_snapshot(spec: dict[str, Any]) -> dict[str, Any]:
    """A process holding the user-user snapshot of the same data, as a serving worker did before the item model."""
    import adapters.model_store  # noqa: F401 - the same imports as the item-model process, so the interpreters compare
    import domain.item_model  # noqa: F401
    from domain.user_knn import ModelSnapshot, Recommender, RecommenderParams

    shape, data_dir = Shape(**spec["shape"]), Path(spec["data_dir"])
    baseline = status_mb()["VmRSS"]
    columns = columns_of(shape, data_dir)
    snapshot = ModelSnapshot.build(columns, RecommenderParams())
    users = list(columns.user_ids[:BATCH])
    del columns  # the scan's columns are dropped once the snapshot is built
    gc.collect()
    Recommender(RecommenderParams()).recommend_batch(snapshot, users, {})
    memory = status_mb()
    pid = os.getpid()
    with tempfile.TemporaryDirectory() as nowhere:
        shared = smaps_mb(pid, Path(nowhere))
    return {"baseline_mb": baseline, "rss_mb": memory["VmRSS"], "peak_mb": memory["VmHWM"], "uss_mb": shared["uss"],
            "pss_mb": shared["pss"], "n_ratings": snapshot.n_ratings}


def touch(model: Any) -> float:
    """Read every page of the model's arrays, as a worker that has served for a while has."""
    arrays = (model.book_ids, model.popularity, model.weights.indptr, model.weights.indices, model.weights.data,
              model.user_offsets, model.user_bytes)
    return float(sum(float(np.asarray(array).sum()) for array in arrays))


def synthetic_batch(model: Any) -> tuple[list[str], dict[str, list[Any]]]:
    """A batch of users who each rated a few books of the model (for warming a process up, not for timing)."""
    from domain.models import Rating

    rng = np.random.default_rng(1)
    users = [f"warm-{index}" for index in range(BATCH)]
    books = model.book_ids.tolist()
    return users, {user: [Rating(user, books[column], 4, EPOCH) for column in rng.choice(len(books), size=min(20, len(books)), replace=False)]
                   for user in users}


def share_worker(model_dir: str, version: str, ready: Any, stop: Any) -> None:
    """A spawned serving worker: load the published model memory-mapped, serve a batch, touch every page, wait."""
    from domain.item_model import ItemRecommender

    model = load_model(Path(model_dir), version)
    ItemRecommender(MAX_RECOMMENDATIONS).recommend_batch(model, *synthetic_batch(model))
    touch(model)
    ready.set()
    stop.wait()


def measure_sharing(root: Path, version: str) -> list[dict[str, Any]]:
    """Two spawned workers mapping the same artifact: USS/PSS with one alive, then with both."""
    context = multiprocessing.get_context("spawn")
    stop = context.Event()
    workers, rows = [], []
    try:
        for count in (1, 2):
            ready = context.Event()
            worker = context.Process(target=share_worker, args=(str(root), version, ready, stop))
            worker.start()
            workers.append(worker)
            if not ready.wait(300):
                raise RuntimeError("a sharing worker did not get ready in 300 s")
            for index, running in enumerate(workers):
                rows.append({"alive": count, "worker": index + 1, **smaps_mb(running.pid, root)})
    finally:
        stop.set()
        for worker in workers:
            worker.join(30)
    return rows


TASKS = {"train": task_train, "fill_sqlite": task_fill_sqlite, "train_sqlite": task_train_sqlite, "score": task_score,
         "start": task_start, "hold_snapshot": task_hold_snapshot}


# --- the commands -----------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def spread(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> str:
    """median [min, max]"""
    low, mid, high = (value * scale for value in (min(values), median(values), max(values)))
    return f"{mid:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]"


def met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def loadavg() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def scoring(args: argparse.Namespace, report: list[str], out: dict[str, Any]) -> None:
    report += [
        "### Scoring: CPU per user, item model vs user-user (same users, same process, taking turns)",
        "",
        f"`ItemRecommender({MAX_RECOMMENDATIONS}).recommend_batch(model, users, ratings)` with the default `ItemModelParams()`, "
        f"the model memory-mapped from a LocalModelStore as a serving worker holds it; the users' own ratings are passed in "
        f"as Rating lists (read before the clock starts, as the service reads them on a miss). The baseline is "
        f"`Recommender(RecommenderParams()).recommend_batch(snapshot, users, {{}})` on `ModelSnapshot.build` of the same "
        f"ratings (its batches of 100 use its 2-thread pool: its CPU is both threads'). "
        f"{args.batches} batches of {BATCH} distinct random users and {args.singles} single users per scale; "
        f"per-user figures are a batch's time / {BATCH}. Median [min, max].",
        "",
        "| data | recommender | CPU ms/user, batch of 100 | wall ms/user, batch of 100 | CPU ms, one user | wall ms, one user |",
        "|---|---|---|---|---|---|",
    ]
    for ratings in args.ratings:
        shape = Shape(args.users, args.books, ratings)
        version = published_version(shape, args.data_dir)
        result = child("score", {"shape": asdict(shape), "data_dir": str(args.data_dir), "model_dir": str(model_dir(shape, args.data_dir)),
                                 "version": version, "batches": args.batches, "singles": args.singles, "batch": BATCH,
                                 "profile": args.profile})
        times = result["times"]
        for name, label in (("item", "item model (EASE)"), ("knn", "user-user (old)")):
            batch, single = times[f"{name}_batch"], times[f"{name}_single"]
            report.append(f"| {shape.label} | {label} | {spread(batch['cpu'], 1e3, 3)} | {spread(batch['wall'], 1e3, 3)} | "
                          f"{spread(single['cpu'], 1e3, 3)} | {spread(single['wall'], 1e3, 3)} |")
        item_batch, item_single = median(times["item_batch"]["cpu"]), median(times["item_single"]["cpu"])
        ratio_batch = median(times["knn_batch"]["cpu"]) / item_batch
        ratio_single = median(times["knn_single"]["cpu"]) / item_single
        out.setdefault("scoring", []).append({"ratings": ratings, **result})
        report.append(
            f"| | *item / old, CPU* | {ratio_batch:.1f}x faster | | {ratio_single:.1f}x faster | |"
        )
        out.setdefault("scoring_summary", []).append({
            "ratings": ratings, "item_batch_cpu_ms": item_batch * 1e3, "item_single_cpu_ms": item_single * 1e3,
            "batch_target_met": item_batch <= TARGETS["batch"], "single_target_met": item_single <= TARGETS["single"],
        })
        checks = (f"{result['full_lists']:,} of {result['lists']:,} item-model lists had {MAX_RECOMMENDATIONS} books, "
                  f"{result['collaborative_share']:.1%} of their items COLLABORATIVE; {result['mean_ratings_per_user']:.0f} "
                  f"ratings per sampled user on average; B holds {result['n_weights']:,} weights over {result['n_books']:,} books")
        out.setdefault("scoring_checks", []).append(f"{ratings:,} ratings: {checks}")
        if result["profile"]:
            out.setdefault("profiles", []).append(f"{shape.label}, {args.batches} batches of {BATCH}:\n{result['profile']}")
    report += [""] + [f"- {line}" for line in out["scoring_checks"]]
    for summary in out["scoring_summary"]:
        report.append(f"- Targets at {summary['ratings']:,} ratings: batch of 100 {summary['item_batch_cpu_ms']:.3f} ms CPU per user "
                      f"(<= 0.3 ms: {met(summary['batch_target_met'])}); one user {summary['item_single_cpu_ms']:.3f} ms CPU "
                      f"(<= 1 ms: {met(summary['single_target_met'])})")
    report.append("")


def training(args: argparse.Namespace, report: list[str], out: dict[str, Any]) -> None:
    report += [
        "### Training: wall time and peak memory, each run a fresh process",
        "",
        "`train(columns, ItemModelParams())` from the ratings as RatingColumns in memory (what `bookrec train` "
        "hands it after the scan). Peak is the process's VmHWM: interpreter, the columns and training. "
        "\"columns\" is the RSS once the columns are loaded, before training. CPU counts every thread (OpenBLAS "
        "uses both cores for the Cholesky factorisation and inverse). Median [min, max].",
        "",
        "| data | algorithm | runs | wall s | CPU s | peak MiB | columns MiB | weights kept | targets (~1M ratings) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [(Shape(args.users, args.books, ratings), {}) for ratings in args.ratings]
    rows.append((Shape(args.knn_users, args.knn_books, args.knn_ratings), {"algorithm": "knn"}))
    for shape, params in rows:
        runs = [child("train", {"shape": asdict(shape), "data_dir": str(args.data_dir), "params": params})
                for _ in range(args.knn_runs if params else args.runs)]
        first = runs[0]
        target = ""
        if not params and shape.ratings == args.ratings[0]:
            wall, peak = median([r["wall"] for r in runs]), median([r["peak_mb"] for r in runs]) * MB
            target = f"wall <= 60 s: {met(wall <= TARGETS['train_wall'])}; peak <= 3 GB: {met(peak <= TARGETS['train_peak'])}"
        report.append(
            f"| {shape.label} | {first['algorithm']} | {len(runs)} | {spread([r['wall'] for r in runs], digits=1)} | "
            f"{spread([r['cpu'] for r in runs], digits=1)} | {spread([r['peak_mb'] for r in runs], digits=0)} | "
            f"{median([r['columns_mb'] for r in runs]):,.0f} | {first['n_weights']:,} ({first['weights_mb']:,.0f} MiB) | {target} |"
        )
        out.setdefault("training", []).append({"shape": asdict(shape), "params": params, "runs": runs})
        if args.profile:
            profiled = child("train", {"shape": asdict(shape), "data_dir": str(args.data_dir), "params": params, "profile": True})
            out.setdefault("profiles", []).append(
                f"train, {shape.label}, {profiled['algorithm']} ({profiled['wall']:.1f} s wall under the profiler):\n{profiled['profile']}")
    knn = out["training"][-1]
    n = knn["runs"][0]["n_books"]
    dense = n * n * 8 / MB
    block = knn["runs"][0]["block_books"] * n * 8 / MB
    peak = median([r["peak_mb"] for r in knn["runs"]])
    report += [
        "",
        f"- Item-kNN at {n:,} books: peak {peak:,.0f} MiB, against {dense:,.0f} MiB for one dense {n:,}^2 float64 matrix "
        f"({peak / dense:.1%} of it). Training forms {knn['runs'][0]['block_books']:,} rows of X^T X at a time "
        f"({block:,.0f} MiB dense per block) and prunes each block to its top weights before the next.",
    ]
    if not args.skip_sqlite:
        report += [
            "",
            "The `bookrec train` path on SQLite, one run each, fresh process: `scan_columns()` of a SQLite store holding the "
            "ratings, `train`, `publish` to a LocalModelStore (ModelService.train_and_publish's three steps). Peak is VmHWM.",
            "",
            "| data | scan s | train s (CPU s) | publish s | total s | RSS after scan MiB | peak MiB |",
            "|---|---|---|---|---|---|---|",
        ]
        for ratings in args.ratings:
            shape = Shape(args.users, args.books, ratings)
            path = args.data_dir / f"ratings-{shape.key}.sqlite"
            if not path.with_suffix(".filled").exists():
                path.unlink(missing_ok=True)
                child("fill_sqlite", {"shape": asdict(shape), "data_dir": str(args.data_dir), "path": str(path)})
                path.with_suffix(".filled").touch()
            run = child("train_sqlite", {"path": str(path), "data_dir": str(args.data_dir)})
            assert run["n_ratings"] == ratings, run
            report.append(f"| {shape.label} | {run['scan']:.1f} | {run['train']:.1f} ({run['train_cpu']:.1f}) | {run['publish']:.2f} | "
                          f"{run['total']:.1f} | {run['scanned_mb']:,.0f} | {run['peak_mb']:,.0f} |")
            out.setdefault("training_sqlite", []).append({"ratings": ratings, **run})
    report.append("")


def serving(args: argparse.Namespace, report: list[str], out: dict[str, Any]) -> None:
    report += [
        "### Serving: model start-up, memory per process, pages shared between workers",
        "",
        "Start-up: in a fresh process, `LocalModelStore(root).load(version)` (reads the manifest, checks every file's "
        "size and sha256, memory-maps the arrays) then `ItemModel.from_artifact`; the files are in the page cache "
        "(published just before, as on a host whose other workers already run). RSS: VmRSS of that process once "
        "every page of the model has been read and a batch scored; \"interpreter\" is its RSS before the load "
        "(Python, numpy, scipy, the store's imports). The old user-user process: `ModelSnapshot.build` from the same "
        "ratings, the columns dropped, a batch scored. Median [min, max] of the runs.",
        "",
        "| data | process | runs | start-up ms (load + from_artifact) | of which load ms | model arrays MiB | RSS MiB | interpreter MiB | peak MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for ratings in args.ratings:
        shape = Shape(args.users, args.books, ratings)
        root, version = model_dir(shape, args.data_dir), published_version(shape, args.data_dir)
        starts = [child("start", {"model_dir": str(root), "version": version}) for _ in range(args.runs)]
        assert all(start["mapped"] == "memmap" for start in starts), starts[0]
        report.append(
            f"| {shape.label} | item model | {len(starts)} | {spread([s['start'] for s in starts], 1e3, 1)} | "
            f"{spread([s['load'] for s in starts], 1e3, 1)} | {starts[0]['artifact_mb']:.1f} | "
            f"{median([s['rss_mb'] for s in starts]):,.0f} | {median([s['baseline_mb'] for s in starts]):,.0f} | "
            f"{median([s['peak_mb'] for s in starts]):,.0f} |"
        )
        old = child("hold_snapshot", {"shape": asdict(shape), "data_dir": str(args.data_dir)})
        report.append(f"| {shape.label} | user-user snapshot (old) | 1 | | | | {old['rss_mb']:,.0f} | {old['baseline_mb']:,.0f} | "
                      f"{old['peak_mb']:,.0f} |")
        out.setdefault("serving", []).append({"ratings": ratings, "starts": starts, "old": old})
    report += [
        "",
        "Two workers, `multiprocessing` spawn, each loading the same published version (the first scale's) memory-mapped, "
        "scoring a batch and reading every page, then waiting. From /proc/<pid>/smaps_rollup: USS = Private_Clean + "
        "Private_Dirty, PSS = Pss, RSS = Rss; \"model\" columns sum the same over the mappings of the version's .npy "
        "files (/proc/<pid>/smaps). MiB.",
        "",
        "| workers alive | worker | USS | PSS | RSS | model RSS | model PSS | model USS |",
        "|---|---|---|---|---|---|---|---|",
    ]
    shape = Shape(args.users, args.books, args.ratings[0])
    rows = measure_sharing(model_dir(shape, args.data_dir), published_version(shape, args.data_dir))
    for row in rows:
        report.append(f"| {row['alive']} | {row['worker']} | {row['uss']:.1f} | {row['pss']:.1f} | {row['rss']:.1f} | "
                      f"{row['model_rss']:.1f} | {row['model_pss']:.1f} | {row['model_uss']:.1f} |")
    out["sharing"] = rows
    old = out["serving"][0]["old"]
    report += ["", f"- The old user-user process at {args.ratings[0]:,} ratings: USS {old['uss_mb']:.0f} MiB, PSS "
               f"{old['pss_mb']:.0f} MiB: its snapshot is private to every worker (each builds its own).", ""]


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "?")
    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}, numpy {np.__version__}, "
            f"scipy {scipy.__version__}")


def source_hashes() -> dict[str, str]:
    """What the figures measure: the domain modules' current bytes (the working tree may change under a long run)."""
    return {name: hashlib.blake2b((ROOT / name).read_bytes(), digest_size=6).hexdigest()
            for name in ("domain/item_model.py", "domain/user_knn.py", "domain/ranking.py")}


COMMANDS = {"scoring": scoring, "training": training, "serving": serving}


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", nargs="?", default="all", choices=[*COMMANDS, "all"], help="default: all")
    parser.add_argument("--users", type=int, default=USERS)
    parser.add_argument("--books", type=int, default=BOOKS)
    parser.add_argument("--ratings", default=",".join(map(str, RATINGS)), help="comma-separated rating counts (the first is the targets' scale)")
    parser.add_argument("--knn-users", type=int, default=KNN_USERS)
    parser.add_argument("--knn-books", type=int, default=KNN_BOOKS)
    parser.add_argument("--knn-ratings", type=int, default=KNN_RATINGS)
    parser.add_argument("--runs", type=int, default=3, help="training runs per scale (EASE), start-up runs per scale")
    parser.add_argument("--knn-runs", type=int, default=1, help="training runs of item-kNN")
    parser.add_argument("--batches", type=int, default=30, help="scoring: batches of 100 per scale")
    parser.add_argument("--singles", type=int, default=300, help="scoring: single users per scale")
    parser.add_argument("--profile", action="store_true", help="cProfile the item model's scoring batches, and one more training run per scale")
    parser.add_argument("--skip-sqlite", action="store_true", help="training: skip the SQLite scan + train + publish path")
    parser.add_argument("--data-dir", type=Path, default=RESULTS, help="where generated data and trained models are cached")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON here")
    args = parser.parse_args(argv)
    args.ratings = [int(value) for value in args.ratings.split(",") if value]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_child"]:  # internal: python -m bench.bench_item_model _child TASK SPEC
        print(json.dumps(TASKS[argv[1]](json.loads(argv[2]))))
        return 0
    args = parse(argv)
    args.data_dir = args.data_dir.resolve()
    started, source = loadavg(), source_hashes()
    report = [f"Command: `python -m {MODULE} {' '.join(argv)}`", "",
              f"Machine: {machine()}; load average at start {started}", "",
              f"Code measured: {', '.join(f'{name} {digest}' for name, digest in source.items())} (blake2b of the files)", ""]
    out: dict[str, Any] = {"argv": argv, "load_start": os.getloadavg()}
    for name in COMMANDS if args.command == "all" else [args.command]:
        COMMANDS[name](args, report, out)
        report.append(f"(load average after {name}: {loadavg()})")
        report.append("")
    out["load_end"] = os.getloadavg()
    if source_hashes() != source:
        report.append(f"**WARNING: the domain code changed during the run** ({source_hashes()}): rerun.")
    text = "\n".join(report)
    print(text)
    for profile in out.get("profiles", []):
        print(profile)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    if args.data_dir == RESULTS:
        (RESULTS / f"item_model-{args.command}.md").write_text(text + "\n" + "\n".join(out.get("profiles", [])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
