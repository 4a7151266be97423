"""Recommender speed and memory at goodbooks scale and at 6M ratings, against a naive baseline.

    python -m bench.bench_recommender [--scales 1m,6m] [--runs 5] [--skip-all-users] [--skip-sqlite]

Every measurement group runs in a subprocess of its own, so that its peak RSS
(`resource.getrusage(...).ru_maxrss`) is its own. Data is the shared synthetic generator's
(adapters.synthetic_data, goodbooks-shaped), generated once and cached under bench/results/.

The baseline is `naive_recommend`: what the service replaces, a request that rebuilds the
dense users x books matrix from every rating and scores one user against it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy

from adapters.synthetic_data import generate
from domain.models import RatingColumns
from domain.recommender import LIKED_RATING, ModelSnapshot, Recommender, RecommenderParams

RESULTS = Path(__file__).resolve().parent / "results"
USERS, BOOKS, SEED = 53_424, 10_000, 7
SCALES = {"1m": 981_756, "6m": 6_000_000}  # goodbooks-10k's older release has 981,756 ratings
BATCH = 100
ALL_USERS_BATCH = 1_000  # `bookrec warm`'s default batch size
TARGETS = {"build": "<= 3 s", "single": "<= 3 ms", "batch": "<= 1 ms/user", "all_users": "<= 60 s, <= 2 GB"}


def synthetic_columns(ratings: int) -> RatingColumns:
    """The goodbooks-shaped synthetic data at this scale, cached as .npz (generation takes a while)."""
    cache = RESULTS / f"ratings-{USERS}x{BOOKS}x{ratings}-seed{SEED}.npz"
    if not cache.exists():
        RESULTS.mkdir(parents=True, exist_ok=True)
        data = generate(USERS, BOOKS, ratings, SEED)
        np.savez(cache, user_ids=data.user_ids, book_ids=data.book_ids, ratings=data.ratings)
    arrays = np.load(cache)
    return RatingColumns(
        tuple(str(user) for user in range(1, USERS + 1)),
        (arrays["user_ids"] - 1).astype(np.int32),
        arrays["book_ids"].astype(np.int32),
        arrays["ratings"].astype(np.float32),
    )


def naive_recommend(columns: RatingColumns, user_row: int, params: RecommenderParams) -> list[int]:
    """BASELINE ONLY: rebuild a dense users x books matrix per request, then user-user cosine.

    The same maths as the service's defaults (cosine on stars, top-k neighbours, popularity-
    discounted share of neighbours), but dense and from scratch on every call.
    """
    dense = np.zeros((len(columns.user_ids), int(columns.book_ids.max()) + 1), dtype=np.float32)
    dense[columns.user_codes, columns.book_ids] = columns.ratings
    norms = np.sqrt(np.einsum("ij,ij->i", dense, dense))
    similarities = dense @ dense[user_row] / np.maximum(norms * norms[user_row], 1e-12)
    similarities[user_row] = 0
    neighbours = np.argsort(-similarities)[: params.neighbours]
    weights = np.maximum(similarities[neighbours], 0)
    rows = dense[neighbours]
    evidence = {"binary": rows > 0, "liked": rows >= LIKED_RATING, "rating": rows / 5}[params.aggregation]
    readers = np.maximum(np.count_nonzero(dense, axis=0) / len(dense), 1e-12)
    scores = weights @ evidence / max(weights.sum(), 1e-12) * readers**-params.popularity_discount
    scores[dense[user_row] > 0] = -np.inf
    return np.argsort(-scores, kind="stable")[: params.max_recommendations].tolist()


def _timed(function: Callable[[], object]) -> tuple[float, float]:
    """Wall and CPU seconds of one call: the machine is shared, and CPU time is the compute alone."""
    started, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - started, time.process_time() - cpu


def _split(timings: list[tuple[float, float]], name: str, per: int = 1) -> dict[str, list[float]]:
    return {name: [wall / per for wall, _ in timings], f"{name}_cpu": [cpu / per for _, cpu in timings]}


def _sample_users(snapshot: ModelSnapshot, count: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [snapshot.user_ids[row] for row in rng.choice(snapshot.n_users, size=count, replace=False)]


def measure(group: str, scale: str, runs: int) -> dict[str, list[float]]:
    """One measurement group at one scale (runs inside its own subprocess); seconds unless named."""
    columns = synthetic_columns(SCALES[scale])
    params = RecommenderParams()
    recommender = Recommender(params)
    if group == "build":
        return {"build": [ModelSnapshot.build(columns, params).build_seconds for _ in range(runs)]}
    if group == "sqlite":
        return {"sqlite_build": [_sqlite_end_to_end(columns, scale, params) for _ in range(runs)]}
    snapshot = ModelSnapshot.build(columns, params)
    if group == "requests":
        recommender.recommend_batch(snapshot, _sample_users(snapshot, BATCH, seed=99), {})  # warm up allocations
        singles = [_timed(lambda: recommender.recommend_batch(snapshot, [user], {})) for user in _sample_users(snapshot, 20 * runs)]
        batches = [
            _timed(lambda: recommender.recommend_batch(snapshot, _sample_users(snapshot, BATCH, seed=run), {}))
            for run in range(runs)
        ]
        return {**_split(singles, "single"), **_split(batches, "batch", per=BATCH)}
    if group == "all_users":
        users = snapshot.user_ids

        def score_everyone() -> None:
            for start in range(0, len(users), ALL_USERS_BATCH):
                recommender.recommend_batch(snapshot, users[start : start + ALL_USERS_BATCH], {})

        return _split([_timed(score_everyone)], "all_users")
    if group == "naive":
        rows = np.random.default_rng(0).choice(snapshot.n_users, size=max(3, runs // 2), replace=False)
        return _split([_timed(lambda: naive_recommend(columns, int(row), params)) for row in rows], "naive")
    raise ValueError(f"unknown group {group!r}")


def _sqlite_end_to_end(columns: RatingColumns, scale: str, params: RecommenderParams) -> float:
    """Seconds from an opened SQLite store to a built snapshot: scan_columns + build."""
    from adapters.sqlite_store import open_sqlite_stores  # only this group needs the adapter

    path = RESULTS / f"ratings-{scale}.sqlite"
    ratings, _ = open_sqlite_stores(path)

    async def load() -> float:
        if not path.with_suffix(".loaded").exists():
            await ratings.put_many(_ratings_of(columns))
            path.with_suffix(".loaded").touch()
        started = time.perf_counter()
        ModelSnapshot.build(await ratings.scan_columns(), params)
        return time.perf_counter() - started

    try:
        return asyncio.run(load())
    finally:
        ratings.close()


def _ratings_of(columns: RatingColumns):  # noqa: ANN202 - a generator of Rating
    from adapters.goodbooks_csv import IMPORTED_RATED_AT
    from domain.models import Rating

    for code, book, stars in zip(columns.user_codes.tolist(), columns.book_ids.tolist(), columns.ratings.tolist()):
        yield Rating(columns.user_ids[code], book, int(stars), IMPORTED_RATED_AT)


def run_group_in_subprocess(group: str, scale: str, runs: int) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, "-m", "bench.bench_recommender", "--group", group, "--scale", scale, "--runs", str(runs)],
        check=True, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1],
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")), "?")
    return (
        f"{os.cpu_count()} cores ({model}), Python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', 'unset')}, load average at start {os.getloadavg()[0]:.1f}"
    )


def _row(scale: str, name: str, values: list[float], unit: float, suffix: str, peak_mb: float, target: str) -> str:
    cells = (f"{statistics.median(values) * unit:.2f}", f"{min(values) * unit:.2f}", f"{max(values) * unit:.2f}")
    return f"| {scale} | {name} | {' | '.join(c + suffix for c in cells)} | {len(values)} | {peak_mb:,.0f} MB | {target} |"


def report(scales: list[str], runs: int, all_users: bool, sqlite: bool) -> str:
    lines = [
        f"Machine: {machine()}",
        "",
        "| scale | measurement | median | min | max | runs | peak RSS | target |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ratios = []
    for scale in scales:
        groups = ["build", "requests", "naive"] + (["sqlite"] if sqlite else []) + (["all_users"] if all_users else [])
        results = {group: run_group_in_subprocess(group, scale, runs) for group in groups}
        label = f"{scale} ({SCALES[scale]:,} ratings)"

        def add(group: str, key: str, name: str, unit: float, suffix: str, target: str = "") -> None:
            lines.append(_row(label, name, results[group]["values"][key], unit, suffix, results[group]["peak_mb"], target))

        add("build", "build", "snapshot build from columns", 1, " s", TARGETS["build"])
        if sqlite:
            add("sqlite", "sqlite_build", "SQLite scan + build", 1, " s", TARGETS["build"])
        add("requests", "single", "one user, cold: wall", 1000, " ms", TARGETS["single"])
        add("requests", "single_cpu", "one user, cold: CPU", 1000, " ms", TARGETS["single"])
        add("requests", "batch", f"batch of {BATCH}, per user: wall", 1000, " ms", TARGETS["batch"])
        add("requests", "batch_cpu", f"batch of {BATCH}, per user: CPU (2 threads)", 1000, " ms", TARGETS["batch"])
        if all_users:
            add("all_users", "all_users", f"all {USERS:,} users, batches of {ALL_USERS_BATCH}: wall", 1, " s", TARGETS["all_users"])
            add("all_users", "all_users_cpu", f"all {USERS:,} users: CPU (2 threads)", 1, " s")
        add("naive", "naive", "naive baseline, one user: wall", 1000, " ms")
        add("naive", "naive_cpu", "naive baseline, one user: CPU", 1000, " ms")
        medians = {key: statistics.median(results[group]["values"][key])
                   for group, key in (("naive", "naive"), ("naive", "naive_cpu"), ("requests", "single"), ("requests", "single_cpu"))}
        ratios.append(f"{scale}: naive / service, one user, medians: {medians['naive'] / medians['single']:,.0f}x wall, "
                      f"{medians['naive_cpu'] / medians['single_cpu']:,.0f}x CPU")
    return "\n".join(lines + ["", *ratios, ""])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_recommender", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1m,6m", help="comma-separated: " + ", ".join(SCALES))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-all-users", action="store_true", help="skip scoring every user (the slowest group)")
    parser.add_argument("--skip-sqlite", action="store_true", help="skip the SQLite end-to-end build")
    parser.add_argument("--group", help=argparse.SUPPRESS)  # internal: run one group, print JSON
    parser.add_argument("--scale", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.group:
        values = measure(args.group, args.scale, args.runs)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({"values": values, "peak_mb": peak_mb}))
        return 0
    table = report(args.scales.split(","), args.runs, not args.skip_all_users, not args.skip_sqlite)
    print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "recommender.md").write_text(f"Command: python -m bench.bench_recommender {' '.join(argv or sys.argv[1:])}\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
