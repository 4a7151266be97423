"""The HTTP benchmark (issue 7): bookrec against the seed's design and Apollo Server 5, over loopback.

    python -m bench.http_bench [--quick] [--runs 3] [--duration 10] [--cases hit,cold,mixed,warm]

Everything runs on this machine: a redis-server of its own on a free port (the shared
6379 is never touched), the goodbooks-scale synthetic data (53,424 users x 10,000 books,
981,756 ratings: `bookrec generate` + `bookrec import`, cached under bench/results/http/),
every user's list cached by `bookrec warm` (case 5, measured), and one process per
server under test, each on one core's worth of event loop:

- bookrec: `bookrec serve` (uvicorn, one worker, uvloop, httptools, no access log), the app as shipped;
- seed: bench/seed_fastapi.py under uvicorn with the same flags;
- apollo: bench/apollo/server.mjs (Apollo Server 5 standalone, DataLoader, ioredis), `npm ci` first.

The load is wrk (-t1 -c32, Debian's) with bench/wrk/requests.lua drawing random user ids.
Each measured run follows a warm-up run; servers take turns (A, B, C, A, B, C, ...) so
that the machine's noise falls on all of them alike, and every ratio is taken within
one round, then summarised as median [min, max] over the rounds. wrk's and the server's
CPU seconds are read for every run (wait4 and /proc), to show which one was saturated.
Results go to bench/results/http.json and replace this suite's generated section of
BENCHMARKS.md (between its markers); the analysis written below the markers stays.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DATA = RESULTS / "http"
LUA = ROOT / "bench" / "wrk" / "requests.lua"
APOLLO = ROOT / "bench" / "apollo"
BENCHMARKS = ROOT / "BENCHMARKS.md"
SECTION_START, SECTION_END = "<!-- http-bench:start -->", "<!-- http-bench:end -->"

USERS, BOOKS, RATINGS, SEED = 53_424, 10_000, 981_756, 7
CONNECTIONS = 32
SECRET = "http-bench-secret-http-bench-secret"
HOT_QUERY = "query($id: ID!) { user(id: $id) { recommendations(limit: 10) { score book { id title authors } } } }"
# The server's settings for every bookrec process here. A Redis timeout of 50 ms (the default)
# turns the odd scheduling stall of a shared, loaded machine into a cache miss, which is not what
# a hit case measures; no model refresh, no mutation rate limit (case 4 sends them all from one admin).
BOOKREC_ENV = {
    "AUTH_JWT_SECRET": SECRET,
    "LOG_LEVEL": "WARNING",
    "MODEL_REFRESH_SECONDS": "0",
    "CACHE_TTL_SECONDS": "86400",
    "REDIS_TIMEOUT_MS": "500",
    "MUTATION_RATE_PER_MINUTE": "0",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, str]:
    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
        "?",
    )
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip() if shutil.which("node") else "absent"
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout.splitlines()
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    return {
        "cpus": str(os.cpu_count()),
        "cpu_model": model,
        "python": platform.python_version(),
        "node": node,
        "wrk": wrk[0].split(" Copyright")[0] if wrk else "?",
        "redis": next((part for part in redis if part.startswith("v=")), "?"),
    }


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# Data


def bookrec(*args: str, env: dict[str, str] | None = None, timed: bool = False) -> subprocess.CompletedProcess[str]:
    command = [str(ROOT / ".venv" / "bin" / "bookrec"), *args]
    if timed:
        command = ["/usr/bin/time", "-v", *command]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(env or {})})
    if done.returncode != 0:
        raise RuntimeError(f"bookrec {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def prepare_database(workdir: Path) -> Path:
    """A private copy of the benchmark database (case 4 writes ratings), made once under bench/results/http/."""
    source = DATA / f"bookrec-{USERS}x{BOOKS}x{RATINGS}-seed{SEED}.db"
    if not source.exists():
        csv = DATA / "csv"
        print(f"generating {RATINGS:,} ratings of {USERS:,} users and importing them (once; cached in {DATA})", flush=True)
        bookrec("generate", "--users", str(USERS), "--books", str(BOOKS), "--ratings", str(RATINGS), "--seed", str(SEED), "--out", str(csv))
        partial = source.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        bookrec("import", "--books", str(csv / "books.csv"), "--ratings", str(csv / "ratings.csv"), env={"SQLITE_PATH": str(partial)})
        partial.rename(source)
    database = workdir / "bookrec.db"
    shutil.copyfile(source, database)
    return database


def export_books(database: Path, path: Path) -> None:
    """The catalog as JSON for the Apollo baseline, which keeps books in a map as a Node team would."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = connection.execute("SELECT id, title, authors, publication_year, image_url FROM books").fetchall()
    books = [
        {"id": book_id, "title": title, "authors": json.loads(authors), "publicationYear": year, "imageUrl": image}
        for book_id, title, authors, year, image in rows
    ]
    path.write_text(json.dumps(books))


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: redis_cli(port, "PING") == "PONG", "redis-server")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=30)


def redis_cli(port: int, *args: str) -> str:
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, text=True).stdout.strip()


def cache_counts(server: Server) -> tuple[float, float]:
    """The server's own count of users found and not found in the cache, from its /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=30) as response:
        lines = response.read().decode().splitlines()
    values = {name: float(value) for name, _, value in (line.partition(" ") for line in lines if not line.startswith("#"))}
    return values["bookrec_cache_hits_total"], values["bookrec_cache_misses_total"]


def observed_hit_ratio(before: tuple[float, float], after: tuple[float, float]) -> float | None:
    hits, misses = after[0] - before[0], after[1] - before[1]
    return hits / (hits + misses) if hits + misses else None


def wait_until(ready: Any, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if ready():
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


# Servers


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    path: str  # where wrk sends requests
    ready_path: str
    ready_status: int = 200  # what a GET of ready_path answers once the server serves
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self, logs: Path) -> None:
        log = (logs / f"{self.name}.log").open("wb")
        self.process = subprocess.Popen(self.command, cwd=ROOT, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see {logs / (self.name + '.log')}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=2) as response:
                    return response.status == self.ready_status
            except urllib.error.HTTPError as error:
                return error.code == self.ready_status

        wait_until(ready, self.name)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def bookrec_server(name: str, database: Path, redis_url: str) -> Server:
    port = free_port()
    env = {**BOOKREC_ENV, "SQLITE_PATH": str(database), "REDIS_URL": redis_url, "PORT": str(port)}
    return Server(name, [str(ROOT / ".venv" / "bin" / "bookrec"), "serve"], env, port, "/graphql", "/readyz")


def seed_server(redis_url: str) -> Server:
    port = free_port()
    command = [
        str(ROOT / ".venv" / "bin" / "uvicorn"), "bench.seed_fastapi:app", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    ]
    return Server("seed", command, {"REDIS_URL": redis_url}, port, "", "/docs")


def apollo_server(redis_url: str, books_json: Path, *, auto_pipelining: bool = False) -> Server:
    port = free_port()
    env = {
        "REDIS_URL": redis_url, "BOOKS_JSON": str(books_json), "PORT": str(port), "NODE_ENV": "production",
        "AUTO_PIPELINING": "1" if auto_pipelining else "0",
    }
    name = "apollo-autopipe" if auto_pipelining else "apollo"
    # A bare GET is refused by Apollo's CSRF check (400): that answer is enough to know it serves.
    return Server(name, ["node", str(APOLLO / "server.mjs")], env, port, "/", "/", ready_status=400)


def npm_ci() -> None:
    if not (APOLLO / "node_modules" / "@apollo" / "server").exists():
        print("npm ci in bench/apollo", flush=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=APOLLO, check=True)


# Load


@dataclass
class Run:
    server: str
    mode: str
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int
    wrk_cpu: float  # share of one core
    server_cpu: float
    hit_ratio: float | None = None

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    @property
    def per_cpu_second(self) -> float:
        """Requests per second of the server's own CPU: its cost, whatever share of the machine it got."""
        return self.rps / self.server_cpu if self.server_cpu > 0 else 0.0


def wait_until_idle(server: Server, *, timeout: float = 30.0) -> None:
    """Until the server has used under 10% of a core for 0.2 s: work a previous run queued (a backlog of
    cold batches in the recommender's pool) must not stall the next one. wrk corrects its latencies for
    coordinated omission, so a single 400 ms stall at one connection would have been a p99 of 400 ms."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(server.pid)
        time.sleep(0.2)
        if cpu_seconds(server.pid) - before < 0.02:
            return


def wrk(server: Server, mode: str, ids: Path, seconds: float, *, connections: int = CONNECTIONS, extra: Sequence[str] = ()) -> Run:
    wait_until_idle(server)
    command = [
        "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s", "-s", str(LUA), server.url,
        "--", mode, str(ids), *extra,
    ]
    server_before = cpu_seconds(server.pid)
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    server_cpu = (cpu_seconds(server.pid) - server_before) / elapsed
    assert process.stdout is not None and process.stderr is not None
    output = process.stdout.read().decode()
    process.stdout.close()
    process.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"wrk failed against {server.name}: {output}")
    line = next(line for line in output.splitlines() if line.startswith("WRK_JSON "))
    result = json.loads(line.removeprefix("WRK_JSON "))
    errors = sum(result[key] for key in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return Run(
        server.name, mode, result["requests"], result["duration_us"] / 1e6,
        result["p50_us"] / 1e3, result["p90_us"] / 1e3, result["p99_us"] / 1e3, errors,
        (usage.ru_utime + usage.ru_stime) / elapsed, server_cpu,
    )


def post_json(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def check_same_answers(bookrec: Server, apollos: Sequence[Server], seed: Server, user_ids: Sequence[str]) -> None:
    """bookrec and Apollo give the same JSON for the hot query; the seed gives the same books, without their details."""
    for user_id in user_ids:
        ours = post_json(bookrec.url, {"query": HOT_QUERY, "variables": {"id": user_id}})
        for apollo in apollos:
            theirs = post_json(apollo.url, {"query": HOT_QUERY, "variables": {"id": user_id}})
            if ours != theirs:
                raise RuntimeError(f"bookrec and {apollo.name} disagree for user {user_id}: {ours} != {theirs}")
        with urllib.request.urlopen(f"{seed.url}/recommendations/{user_id}", timeout=30) as response:
            seed_ids = json.loads(response.read())["book_ids"]
        if [int(item["book"]["id"]) for item in ours["data"]["user"]["recommendations"]] != seed_ids:
            raise RuntimeError(f"bookrec and the seed disagree for user {user_id}")


# Summaries


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def cell(values: Sequence[float], digits: int = 0) -> str:
    median, low, high = spread(values)
    return f"{median:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]"


@dataclass
class Results:
    runs: list[Run] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def of(self, server: str, mode: str) -> list[Run]:
        return [run for run in self.runs if run.server == server and run.mode == mode]

    def table(self, rows: Sequence[tuple[str, str, str]], *, hit_ratio: bool = False) -> list[str]:
        header = "| server | request | req/s | req per server CPU-s | p50 ms | p90 ms | p99 ms | errors | server CPU | wrk CPU |"
        lines = [header + (" hit ratio |" if hit_ratio else ""), "|" + "---|" * (header.count("|") - 1 + hit_ratio)]
        for server, mode, label in rows:
            runs = self.of(server, mode)
            if not runs:
                continue
            line = (
                f"| {server} | {label} | {cell([r.rps for r in runs])} | {cell([r.per_cpu_second for r in runs])} | {cell([r.p50_ms for r in runs], 1)} "
                f"| {cell([r.p90_ms for r in runs], 1)} | {cell([r.p99_ms for r in runs], 1)} | {sum(r.errors for r in runs)} "
                f"| {statistics.median(r.server_cpu for r in runs):.0%} | {statistics.median(r.wrk_cpu for r in runs):.0%} |"
            )
            if hit_ratio:
                line += f" {cell([r.hit_ratio or 0.0 for r in runs], 3)} |"
            lines.append(line)
        return lines

    def ratio(
        self, numerator: tuple[str, str], denominator: tuple[str, str], scale: float = 1.0, *, per_cpu: bool = False
    ) -> list[float]:
        """Per round: numerator req/s (or req per CPU-second) x scale over the denominator's (runs pair up in order)."""
        pairs = zip(self.of(*numerator), self.of(*denominator), strict=True)
        if per_cpu:
            return [a.per_cpu_second * scale / b.per_cpu_second for a, b in pairs]
        return [a.rps * scale / b.rps for a, b in pairs]


# Cases


def hit_cases(results: Results, servers: dict[str, Server], ids: Path, runs: int, seconds: float, warmup: float) -> None:
    """Cases 1, 2 and the floors: every server in turn, round after round."""
    turns = [
        (servers["seed"], "seed"),
        (servers["bookrec"], "user"),
        (servers["apollo"], "user"),
        (servers["apollo-autopipe"], "user"),
        (servers["bookrec"], "typename"),
        (servers["bookrec"], "users50"),
        (servers["apollo"], "users50"),
        (servers["static"], "static"),
    ]
    for server, mode in turns:
        wrk(server, mode, ids, warmup)
    for round_number in range(runs):
        print(f"  hit round {round_number + 1}/{runs} (load {load_average()})", flush=True)
        for server, mode in turns:
            results.runs.append(wrk(server, mode, ids, seconds))


def cold_cases(results: Results, server: Server, redis_port: int, db: int, ids: Path, runs: int, seconds: float) -> None:
    """Case 3: misses only. The server reads an empty Redis database, emptied again before each run."""
    for round_number in range(runs):
        print(f"  cold round {round_number + 1}/{runs} (load {load_average()})", flush=True)
        for mode, connections in (("user", 1), ("user", CONNECTIONS), ("users50", 1), ("users50", CONNECTIONS)):
            redis_cli(redis_port, "-n", str(db), "FLUSHDB")
            before = cache_counts(server)
            run = wrk(server, mode, ids, seconds, connections=connections)
            run.hit_ratio = observed_hit_ratio(before, cache_counts(server))
            run.mode = f"{mode}-c{connections}"
            results.runs.append(run)


def mixed_case(results: Results, server: Server, ids: Path, runs: int, seconds: float, token: str) -> None:
    """Case 4: 95% hot reads, 5% rateBook (each deletes its user's entry), on the warm cache."""
    wrk(server, "mixed", ids, 2, extra=[token, str(BOOKS)])
    for round_number in range(runs):
        print(f"  mixed round {round_number + 1}/{runs} (load {load_average()})", flush=True)
        before = cache_counts(server)
        run = wrk(server, "mixed", ids, seconds, extra=[token, str(BOOKS)])
        run.hit_ratio = observed_hit_ratio(before, cache_counts(server))
        results.runs.append(run)
        # The same server's pure-read rate in the same round, for the ratio.
        reads = wrk(server, "user", ids, seconds)
        reads.mode = "user-beside-mixed"
        results.runs.append(reads)


def warm_case(results: Results, database: Path, redis_url: str, runs: int) -> None:
    """Case 5: `bookrec warm` over every user, timed by the command itself, peak RSS from /usr/bin/time -v."""
    figures = []
    for run in range(runs):
        print(f"  bookrec warm {run + 1}/{runs} (load {load_average()})", flush=True)
        done = bookrec("warm", env={**BOOKREC_ENV, "SQLITE_PATH": str(database), "REDIS_URL": redis_url}, timed=True)
        summary = next(line for line in done.stdout.splitlines() if line.startswith("warmed"))
        rate = float(summary.rsplit(":", 1)[1].split()[0].replace(",", ""))
        warmed, of = (int(word) for word in summary.split()[1:4:2])
        peak_kb = next(int(line.split(":")[1]) for line in done.stderr.splitlines() if "Maximum resident set size" in line)
        figures.append({"users_per_s": rate, "peak_mb": peak_kb / 1024, "warmed": warmed, "of": of})
    results.notes["warm"] = figures


def static_server() -> Server:
    """A trivial Node HTTP server answering "ok": what wrk can drive when the server costs nothing."""
    port = free_port()
    script = "require('http').createServer((q, s) => s.end('ok')).listen(Number(process.env.PORT), '127.0.0.1')"
    return Server("static", ["node", "-e", script], {"PORT": str(port)}, port, "/", "/")


# Report


def report(results: Results, args: argparse.Namespace, started: dict[str, str], ended_load: str) -> str:
    m = results.notes["machine"]
    lines = [
        SECTION_START,
        "## HTTP: bookrec vs the seed's design and Apollo Server 5 (issue 7)",
        "",
        f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), shared with other work; load average "
        f"{started['load']} at start, {ended_load} at end. Python {m['python']}, Node {m['node']}, {m['wrk']}, "
        f"redis-server {m['redis']}. Run at {started['time']}.",
        "",
        f"Command: `{args.command}` (`make bench` runs `python -m bench`, which runs this). Each cell is the median "
        f"[min, max] of {args.runs} runs of {args.duration:g} s each, wrk -t1 -c{CONNECTIONS} unless stated, after a "
        f"warm-up run; servers took turns round by round. Data: {USERS:,} users x {BOOKS:,} books, {RATINGS:,} "
        "synthetic ratings (`bookrec generate --seed 7`), SQLite catalog, Redis on loopback, every list cached by "
        "`bookrec warm` first. Ratios are per round, then median [min, max].",
        "",
        "Servers: **bookrec** = `bookrec serve` (one uvicorn worker, uvloop, httptools, no access log; metrics, "
        "request ids and request limits on, as shipped); **seed** = bench/seed_fastapi.py (FastAPI `GET "
        "/recommendations/{id}`: one Redis GET, top 10 book ids, no titles); **apollo** = bench/apollo "
        "(Apollo Server 5 standalone + DataLoader + ioredis, one MGET per request, books in a Map, same JSON as "
        "bookrec, checked before the runs); **apollo-autopipe** = the same with ioredis' `enableAutoPipelining` "
        "(bookrec's Redis adapter pipelines the MGETs of one event-loop iteration); **static** = a Node server answering `ok` (wrk's ceiling here).",
        "",
    ]
    if results.of("bookrec", "user"):
        one = results.ratio(("bookrec", "user"), ("seed", "seed"))
        apollo = results.ratio(("bookrec", "user"), ("apollo", "user"))
        floor = results.ratio(("bookrec", "user"), ("bookrec", "typename"))
        many = results.ratio(("bookrec", "users50"), ("seed", "seed"), scale=50)
        p99 = statistics.median(run.p99_ms for run in results.of("bookrec", "user"))
        lines += [
            "### Cases 1 and 2: cache hits",
            "",
            *results.table([
                ("bookrec", "user", "hot query, 1 user"),
                ("seed", "seed", "GET one user's ids"),
                ("apollo", "user", "hot query, 1 user"),
                ("apollo-autopipe", "user", "hot query, 1 user"),
                ("bookrec", "typename", "`{ __typename }` (floor)"),
                ("bookrec", "users50", "`users(ids:)`, 50 users"),
                ("apollo", "users50", "`users(ids:)`, 50 users"),
                ("static", "static", "`ok` (wrk's ceiling)"),
            ]),
            "",
            f"- Case 1, bookrec / seed (req/s): **{cell(one, 2)}** (target >= 1.0); per server CPU-second: "
            f"**{cell(results.ratio(('bookrec', 'user'), ('seed', 'seed'), per_cpu=True), 2)}**",
            f"- Case 1, bookrec / Apollo Server 5 (req/s): **{cell(apollo, 2)}** (target >= 1.0); per server CPU-second: "
            f"**{cell(results.ratio(('bookrec', 'user'), ('apollo', 'user'), per_cpu=True), 2)}**",
            f"- Case 1, bookrec / Apollo Server 5 with ioredis auto-pipelining (req/s): "
            f"{cell(results.ratio(('bookrec', 'user'), ('apollo-autopipe', 'user')), 2)}; per server CPU-second: "
            f"{cell(results.ratio(('bookrec', 'user'), ('apollo-autopipe', 'user'), per_cpu=True), 2)}",
            f"- Case 1, bookrec p99: **{p99:.1f} ms** (target <= 10 ms at 32 connections)",
            f"- Case 1, bookrec hot query / bookrec `{{ __typename }}`: {cell(floor, 2)}",
            f"- Case 2, recommendations per second, bookrec 50 users per request / seed 1 user per request: "
            f"**{cell(many, 1)}** (target >= 10); per server CPU-second: "
            f"{cell(results.ratio(('bookrec', 'users50'), ('seed', 'seed'), scale=50, per_cpu=True), 1)}",
            f"- Case 2, bookrec / Apollo for 50 users: {cell(results.ratio(('bookrec', 'users50'), ('apollo', 'users50')), 2)}",
            "",
        ]
    if results.of("bookrec-cold", "user-c1"):
        lines += [
            "### Case 3: cold misses (an empty Redis database, emptied before every run)",
            "",
            *results.table([
                ("bookrec-cold", "user-c1", "hot query, 1 user, 1 connection"),
                ("bookrec-cold", f"user-c{CONNECTIONS}", f"hot query, 1 user, {CONNECTIONS} connections"),
                ("bookrec-cold", "users50-c1", "50 users, 1 connection"),
                ("bookrec-cold", f"users50-c{CONNECTIONS}", f"50 users, {CONNECTIONS} connections"),
            ], hit_ratio=True),
            "",
            f"- One user, end to end, p50 at 1 connection: **{statistics.median(r.p50_ms for r in results.of('bookrec-cold', 'user-c1')):.1f} ms** "
            "(target <= 20 ms; the seed documented 500-800 ms).",
            "",
        ]
    if results.of("bookrec", "mixed"):
        mixed = results.ratio(("bookrec", "mixed"), ("bookrec", "user-beside-mixed"))
        lines += [
            "### Case 4: mixed, 95% hot reads and 5% rateBook (each deletes its user's entry)",
            "",
            *results.table([("bookrec", "mixed", "95% hot query, 5% rateBook")], hit_ratio=True),
            "",
            f"- Mixed / pure hot reads, same server, same rounds: {cell(mixed, 2)}. The hit ratio is the server's own "
            "(bookrec_cache_hits / (hits + misses) on /metrics) over each run: a rating deletes its user's entry, "
            "so that user's next read is a miss.",
            "",
        ]
    if "warm" in results.notes:
        warm = results.notes["warm"]
        lines += [
            "### Case 5: `bookrec warm` over every user",
            "",
            "| users | users/s | peak RSS | runs |",
            "|---|---|---|---|",
            f"| {warm[0]['warmed']:,} of {warm[0]['of']:,} | {cell([w['users_per_s'] for w in warm])} "
            f"| {cell([w['peak_mb'] for w in warm])} MB | {len(warm)} |",
            "",
            "Users per second as `bookrec warm` reports them (batches of 1,000); peak RSS from `/usr/bin/time -v`.",
            "",
        ]
    if "train" in results.notes:
        lines += [f"Every bookrec process served one item model, trained before the servers started: {results.notes['train']}.", ""]
    lines.append(SECTION_END)
    return "\n".join(lines)


def write_section(section: str, path: Path = BENCHMARKS) -> None:
    """Replace this suite's section of BENCHMARKS.md, leaving every other section as it is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if SECTION_START in text and SECTION_END in text:
        before, rest = text.split(SECTION_START, 1)
        after = rest.split(SECTION_END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 runs of 5 s, one warm run: a smoke run of the whole suite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of the warm-up run before the rounds")
    parser.add_argument("--cases", default="hit,cold,mixed,warm", help="comma-separated: hit, cold, mixed, warm")
    parser.add_argument("--warm-runs", type=int, default=3, help="`bookrec warm` runs (about 2 minutes each here)")
    parser.add_argument("--no-report", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    parser.add_argument("--from-json", type=Path, help="write the section from a saved bench/results/http.json, run nothing")
    parser.add_argument("--redis-port", type=int, help="use this running, already warmed redis-server (db 0 hit, db 1 cold) and skip warming")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that the servers started here are stopped
    if args.quick:
        args.runs, args.duration, args.warmup, args.warm_runs = 2, 5.0, 2.0, 1
    if args.redis_port == 6379:
        parser.error("--redis-port 6379 is the shared server: the cold case empties its db 1")
    args.command = "python -m bench.http_bench " + " ".join(argv if argv is not None else sys.argv[1:])
    cases = set(args.cases.split(","))
    for tool in ("wrk", "redis-server", "redis-cli", "node", "npm"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: the HTTP benchmark needs wrk, redis-server, node and npm", file=sys.stderr)
            return 2

    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        results = Results([Run(**run) for run in saved["runs"]], saved["notes"])
        args.command, args.runs, args.duration = (saved["notes"]["args"][key] for key in ("command", "runs", "duration"))
        section = report(results, args, saved["notes"]["started"], saved["notes"]["ended_load"])
        print(section)
        if not args.no_report:
            write_section(section)
        return 0
    results = Results()
    results.notes["machine"] = machine()
    started = {"load": load_average(), "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    results.notes["started"] = started
    results.notes["args"] = {"command": args.command, "runs": args.runs, "duration": args.duration}
    npm_ci()
    with tempfile.TemporaryDirectory(prefix="bookrec-http-bench-") as scratch:
        workdir = Path(scratch)
        database = prepare_database(workdir)
        # Every bookrec process of the run serves the one model trained here (the time goes in the notes).
        BOOKREC_ENV["MODEL_URI"] = str(workdir / "model")
        print(f"training the item model (load {load_average()})", flush=True)
        trained = bookrec("train", env={**BOOKREC_ENV, "SQLITE_PATH": str(database)}, timed=True)
        results.notes["train"] = next(line for line in trained.stdout.splitlines() if line.startswith("published"))
        ids = workdir / "user-ids.txt"
        ids.write_text("\n".join(str(user) for user in range(1, USERS + 1)) + "\n")
        books_json = workdir / "books.json"
        export_books(database, books_json)
        with contextlib.nullcontext(args.redis_port) if args.redis_port else redis_server(workdir) as redis_port:
            warm_url = f"redis://127.0.0.1:{redis_port}/0"
            if not args.redis_port:
                print(f"warming every user's list (load {load_average()})", flush=True)
                warm_case(results, database, warm_url, args.warm_runs if "warm" in cases else 1)
            cached = int(redis_cli(redis_port, "DBSIZE"))
            results.notes["cached_before_hit_cases"] = cached
            print(f"{cached:,} lists cached", flush=True)
            servers = {
                "bookrec": bookrec_server("bookrec", database, warm_url),
                "seed": seed_server(warm_url),
                "apollo": apollo_server(warm_url, books_json),
                "apollo-autopipe": apollo_server(warm_url, books_json, auto_pipelining=True),
                "static": static_server(),
                "bookrec-cold": bookrec_server("bookrec-cold", database, f"redis://127.0.0.1:{redis_port}/1"),
            }
            try:
                for server in servers.values():
                    server.start(workdir)
                check_same_answers(servers["bookrec"], [servers["apollo"], servers["apollo-autopipe"]], servers["seed"], ["1", "58", "31337", str(USERS)])
                if "hit" in cases:
                    print("cases 1 and 2: cache hits", flush=True)
                    hit_cases(results, servers, ids, args.runs, args.duration, args.warmup)
                if "cold" in cases:
                    print("case 3: cold misses", flush=True)
                    cold_cases(results, servers["bookrec-cold"], redis_port, 1, ids, args.runs, args.duration)
                if "mixed" in cases:
                    print("case 4: mixed reads and ratings", flush=True)
                    token = bookrec("token", "--user", "bench-admin", "--admin", env=BOOKREC_ENV).stdout.strip()
                    mixed_case(results, servers["bookrec"], ids, args.runs, args.duration, token)
            finally:
                for server in servers.values():
                    server.stop()
    if "warm" not in cases:
        results.notes.pop("warm", None)
    results.notes["ended_load"] = load_average()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "http.json").write_text(json.dumps({"runs": [vars(run) for run in results.runs], "notes": results.notes}, indent=1))
    section = report(results, args, started, results.notes["ended_load"])
    print(section)
    if not args.no_report:
        write_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
