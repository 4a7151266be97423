"""compose.yaml: the local stack that `docker compose up` starts (not run here: no Docker engine).

Checked statically: the services, their healthchecks and start order, and that
every environment variable is one the service's settings read, with a value
the settings accept.
"""

from __future__ import annotations

import shlex
from typing import Any

import pytest
import yaml

from graphql_api.settings import Settings, load_settings
from tests.infra.conftest import REPO_ROOT, SDK_ENVIRONMENT, parse_bookrec


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    compose = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())
    return compose["services"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())


def test_stack_has_redis_dynamodb_seed_train_and_api(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {"redis", "dynamodb", "seed", "train", "api"}


def test_redis_7_with_a_ping_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    assert redis["healthcheck"]["test"][:3] == ["CMD", "redis-cli", "ping"]


def test_dynamodb_local_with_a_healthcheck(services: dict[str, dict[str, Any]]) -> None:
    dynamodb = services["dynamodb"]
    assert dynamodb["image"].startswith("amazon/dynamodb-local:")
    assert "-inMemory" in dynamodb["command"] and "-sharedDb" in dynamodb["command"]
    assert "/8000" in " ".join(dynamodb["healthcheck"]["test"])


def test_api_is_built_from_the_dockerfile_and_waits_for_healthy_stores_and_the_seed(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    assert api["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert (REPO_ROOT / api["build"]["dockerfile"]).is_file()
    assert api["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "dynamodb": {"condition": "service_healthy"},
        "seed": {"condition": "service_completed_successfully"},
        "train": {"condition": "service_completed_successfully"},
    }
    assert api["ports"] == ["8000:8000"]


def test_api_environment_points_at_the_compose_services(services: dict[str, dict[str, Any]]) -> None:
    environment = services["api"]["environment"]
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    assert environment["DYNAMODB_ENDPOINT_URL"] == "http://dynamodb:8000"
    assert environment["DYNAMODB_TABLE"] == services["seed"]["environment"]["DYNAMODB_TABLE"]
    assert environment["CACHE_TTL_SECONDS"] == "600"
    assert environment["DEBUG"] == "true"  # GraphiQL, as with `make serve`
    assert environment["AUTH_JWT_SECRET"]


@pytest.mark.parametrize("service", ["api", "seed", "train"])
def test_environment_is_made_of_settings_the_service_reads_with_values_it_accepts(
    services: dict[str, dict[str, Any]], service: str, settings_env_names: frozenset[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    environment = services[service]["environment"]
    assert set(environment) - settings_env_names - SDK_ENVIRONMENT == set()
    assert all(isinstance(value, str) for value in environment.values()), "compose wants strings, not YAML booleans"
    for name in settings_env_names:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()  # raises SettingsError naming a bad value
    assert isinstance(settings, Settings)
    assert settings.dynamodb_table == environment["DYNAMODB_TABLE"]


@pytest.mark.parametrize("service", ["api", "seed", "train"])
def test_app_containers_run_read_only_with_a_tmpfs(services: dict[str, dict[str, Any]], service: str) -> None:
    assert services[service]["read_only"] is True
    assert services[service]["tmpfs"] == ["/tmp"]


def _seed_steps(seed: dict[str, Any]) -> list[list[str]]:
    shell, flag, script = seed["command"]
    assert (shell, flag) == ("sh", "-c")
    return [shlex.split(step) for step in script.split("&&")]


def test_seed_is_one_shot_after_dynamodb_is_healthy(services: dict[str, dict[str, Any]]) -> None:
    seed = services["seed"]
    assert seed["restart"] == "no"
    assert seed["depends_on"] == {"dynamodb": {"condition": "service_healthy"}}
    assert seed["image"] == services["api"]["image"], "the seed runs the API's image"


def test_seed_creates_the_table_generates_demo_data_and_imports_it(services: dict[str, dict[str, Any]]) -> None:
    steps = _seed_steps(services["seed"])
    assert [step[:2] for step in steps] == [["bookrec", "create-table"], ["bookrec", "generate"], ["bookrec", "import"]]
    create, generate, import_ = (parse_bookrec(step) for step in steps)
    out = generate.out
    assert str(out).startswith("/tmp/"), "the only writable path in the container"
    assert (str(import_.books), str(import_.ratings)) == (f"{out}/books.csv", f"{out}/ratings.csv")


# --- Training apart from serving: a one-shot `bookrec train` publishes the model the API reads.


def _mounts(service: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """container path -> (volume, mode) of a service's short-syntax volumes."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target, *mode = entry.split(":")
        mounts[target] = (source, mode[0] if mode else "rw")
    return mounts


def test_train_is_one_shot_bookrec_train_after_the_seed(services: dict[str, dict[str, Any]]) -> None:
    train = services["train"]
    assert train["restart"] == "no"
    assert train["image"] == services["api"]["image"], "training runs the API's image"
    assert train["command"] == ["bookrec", "train"]
    parse_bookrec(train["command"])
    assert train["depends_on"]["seed"] == {"condition": "service_completed_successfully"}
    assert train["depends_on"]["dynamodb"] == {"condition": "service_healthy"}
    # The same store the seed filled and the API serves.
    for name in ("DYNAMODB_TABLE", "DYNAMODB_ENDPOINT_URL"):
        assert train["environment"][name] == services["seed"]["environment"][name] == services["api"]["environment"][name]


def test_train_writes_and_api_reads_the_same_named_volume_at_model_uri(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    train, api = services["train"], services["api"]
    uri = train["environment"]["MODEL_URI"]
    assert api["environment"]["MODEL_URI"] == uri
    assert uri.startswith("/") and not uri.startswith("/tmp"), "a volume, not the container's own tmpfs"
    train_volume, train_mode = _mounts(train)[uri]
    api_volume, api_mode = _mounts(api)[uri]
    assert train_volume == api_volume and train_volume in compose["volumes"], "one named volume"
    assert (train_mode, api_mode) == ("rw", "ro"), "only training writes models"
    assert "models" not in _mounts(services["seed"]) and uri not in _mounts(services["seed"])
    assert int(api["environment"]["MODEL_REFRESH_SECONDS"]) > 0, "a `docker compose run --rm train` is picked up"
