"""`make bench`: the HTTP suite (bench/http_bench.py), and on request the recommender and DynamoDB suites.

    python -m bench [--quick] [--with recommender,dynamodb] [http_bench options...]

The HTTP suite takes 12 to 25 minutes on a shared 2-core machine, most of it three runs
of `bookrec warm` (`--warm-runs 1` saves two; `--quick` takes about 6); the recommender suite
(bench/bench_item_model.py: the item model's scoring, training and serving against the user-user
recommender it replaced, about 30 minutes) and the DynamoDB suite (bench/bench_dynamodb.py, about 10 minutes
of imports into moto) run after it with their own defaults when named in `--with`, each in
its own process, and report as they document.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from bench import http_bench

EXTRA_SUITES = {"recommender": "bench.bench_item_model", "dynamodb": "bench.bench_dynamodb"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--with", dest="extra", default="", help="comma-separated: " + ", ".join(EXTRA_SUITES))
    args, http_args = parser.parse_known_args(argv)
    extra = [name for name in args.extra.split(",") if name]
    unknown = set(extra) - EXTRA_SUITES.keys()
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(sorted(unknown))}")
    status = http_bench.main(http_args)
    for name in extra:
        print(f"\n== {name} ==", flush=True)
        status = subprocess.run([sys.executable, "-m", EXTRA_SUITES[name]]).returncode or status
    return status


if __name__ == "__main__":
    sys.exit(main())
