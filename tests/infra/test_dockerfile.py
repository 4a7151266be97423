"""Dockerfile and .dockerignore, checked without a Docker engine.

The CMD's module path and the health path are checked against the code: the
factory exists and the app it builds serves that path.
"""

from __future__ import annotations

import importlib
import json
import shlex
from dataclasses import dataclass

import pytest

from graphql_api.settings import load_settings
from tests.infra.conftest import REPO_ROOT


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[str]:
        return [instruction.arguments for instruction in self.instructions if instruction.keyword == keyword]

    def one(self, keyword: str) -> str:
        found = self.all(keyword)
        assert len(found) == 1, f"stage {self.name}: expected one {keyword}, found {found}"
        return found[0]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    arguments: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.strip().partition(" ")
        keyword, rest = keyword.upper(), " ".join(rest.split())
        if keyword == "FROM":
            image, *alias = rest.split(" AS ")
            for name, value in arguments.items():
                image = image.replace(f"${{{name}}}", value)
            stages.append(Stage(image.strip(), alias[0].strip() if alias else None, []))
        elif not stages and keyword == "ARG":
            name, _, default = rest.partition("=")
            arguments[name] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, rest))
    return arguments, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile((REPO_ROOT / "Dockerfile").read_text())[1]


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    return stages[-1]


def environment(stage: Stage) -> dict[str, str]:
    return dict(pair.split("=", 1) for line in stage.all("ENV") for pair in shlex.split(line))


def exec_form(arguments: str) -> list[str]:
    parsed = json.loads(arguments)
    assert isinstance(parsed, list) and all(isinstance(part, str) for part in parsed), arguments
    return parsed


def test_multi_stage_build_on_slim_python_3_11(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    assert all(stage.base.startswith("python:3.11-slim") for stage in stages)


def test_builder_installs_the_hashed_lock_then_the_app_without_dependencies(stages: list[Stage]) -> None:
    runs = [run for stage in stages[:-1] for run in stage.all("RUN")]
    lock_install = next(i for i, run in enumerate(runs) if "--require-hashes" in run)
    assert "-r /src/requirements.lock" in runs[lock_install]
    app_install = next(i for i, run in enumerate(runs) if "--no-deps" in run)
    assert app_install > lock_install


def test_runtime_is_non_root_and_writes_only_under_tmp(runtime: Stage) -> None:
    user = runtime.one("USER")
    assert user.split(":")[0] not in {"root", "0"}
    keywords = [instruction.keyword for instruction in runtime.instructions]
    assert keywords.index("USER") < keywords.index("CMD")
    env = environment(runtime)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["SQLITE_PATH"].startswith("/tmp/")
    assert env["HOME"] == "/tmp"
    assert runtime.one("WORKDIR") == "/tmp"
    assert all("pip" not in run for run in runtime.all("RUN")), "the runtime stage installs nothing"
    # Models downloaded from S3 are cached under /tmp too (`bookrec serve` and `bookrec train`).
    assert env["MODEL_CACHE_DIR"].startswith("/tmp/")
    assert load_settings(model_cache_dir=env["MODEL_CACHE_DIR"]).model_cache_dir == env["MODEL_CACHE_DIR"]


def test_models_mount_point_belongs_to_the_runtime_user(runtime: Stage) -> None:
    """compose mounts a fresh named volume on /models; Docker gives it the mount point's owner."""
    uid, _, gid = runtime.one("USER").partition(":")
    assert any(f"install -d -o {uid} -g {gid or uid}" in run and run.rstrip().endswith(" /models") for run in runtime.all("RUN"))


def test_cmd_runs_uvicorn_factory_with_uvloop_and_httptools_and_workers_from_the_environment(runtime: Stage) -> None:
    command = exec_form(runtime.one("CMD"))
    assert command[0] == "uvicorn" and "--factory" in command
    assert command[command.index("--loop") + 1] == "uvloop" and command[command.index("--http") + 1] == "httptools"
    assert "--workers" not in command, "uvicorn takes the worker count from WEB_CONCURRENCY"
    for module in ("uvloop", "httptools"):  # in the lock, so in the image
        importlib.import_module(module)


def _cmd_target(runtime: Stage) -> tuple[str, str]:
    module_path = next(part for part in exec_form(runtime.one("CMD")) if ":" in part and not part.startswith("-"))
    module_name, _, attribute = module_path.partition(":")
    return module_name, attribute


def _health_url(runtime: Stage) -> str:
    options, _, command = runtime.one("HEALTHCHECK").partition(" CMD ")
    probe = exec_form(command)
    assert probe[:2] == ["python", "-c"] and "urllib.request" in probe[2], "slim images have no curl"
    return probe[2].split("'")[1]


def test_healthcheck_probes_the_port_uvicorn_listens_on(runtime: Stage) -> None:
    command = exec_form(runtime.one("CMD"))
    port = command[command.index("--port") + 1]
    assert _health_url(runtime) == f"http://127.0.0.1:{port}/healthz"
    assert runtime.one("EXPOSE") == port


def test_cmd_module_path_and_health_path_exist_in_the_code(runtime: Stage) -> None:
    module_name, attribute = _cmd_target(runtime)
    factory = getattr(importlib.import_module(module_name), attribute)
    app = factory(load_settings(debug=False, auth_jwt_secret="x" * 32))
    paths = {getattr(route, "path", None) for route in app.routes}
    health_path = "/" + _health_url(runtime).split("/", 3)[3]
    assert {health_path, "/graphql"} <= paths


def test_build_context_is_an_allowlist_that_covers_every_copy(stages: list[Stage]) -> None:
    lines = [line.strip() for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    assert patterns[0] == "*", "everything is excluded unless named"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    copied = {
        source.rstrip("/")
        for stage in stages
        for copy in stage.all("COPY")
        if not copy.startswith("--from")
        for source in copy.split()[:-1]
    }
    assert copied and copied <= allowed
    assert all((REPO_ROOT / source).exists() for source in copied)
    assert not any(word in pattern for pattern in allowed for word in ("data", "shared", "csv", ".db", "tests"))
