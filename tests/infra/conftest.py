"""Deployment files parsed once per session for the static checks in this package.

Terraform cannot init or validate here (no provider download), so the checks
read the HCL with python-hcl2 and assert the properties that matter.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hcl2
import pytest

from graphql_api.cli import build_parser
from graphql_api.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
TERRAFORM_ROOT = REPO_ROOT / "infra" / "terraform"

# Read by botocore, not by the service's settings: DynamoDB Local needs some
# credentials to sign with.
SDK_ENVIRONMENT = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"})

_HCL_OPTIONS = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False, preserve_heredocs=False)


def load_hcl(path: Path) -> dict[str, Any]:
    """A .tf or .tfvars file as a dict, string values without their quotes."""
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=_HCL_OPTIONS)


def unwrap(expression: object) -> object:
    """`"${var.x}"` -> `"var.x"`: a reference as written, for comparing wiring."""
    if isinstance(expression, str) and expression.startswith("${") and expression.endswith("}"):
        return expression[2:-1]
    return expression


def block(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The one nested block `name` of a resource body (hcl2 gives blocks as lists)."""
    blocks = body.get(name)
    assert isinstance(blocks, list) and len(blocks) == 1, f"expected exactly one {name} block, found {blocks!r}"
    return blocks[0]


def parse_bookrec(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a `bookrec ...` command line written in a deployment file, failing the test on drift."""
    assert argv[0] == "bookrec", argv
    try:
        return build_parser().parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"`{' '.join(argv)}` is not a command line the bookrec CLI accepts (see the usage error above)")


@dataclass
class TerraformModule:
    """One directory of .tf files, merged the way Terraform merges them."""

    path: Path
    resources: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    data: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    variables: dict[str, dict[str, Any]] = field(default_factory=dict)
    locals: dict[str, Any] = field(default_factory=dict)
    modules: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> TerraformModule:
        module = cls(path)
        for tf_file in sorted(path.glob("*.tf")):
            parsed = load_hcl(tf_file)
            for kind, target in (("resource", module.resources), ("data", module.data)):
                for entry in parsed.get(kind, []):
                    for type_, named in entry.items():
                        for name, body in named.items():
                            target[(type_, name)] = body
            for kind, target in (("variable", module.variables), ("module", module.modules), ("output", module.outputs)):
                for entry in parsed.get(kind, []):
                    target.update(entry)
            for entry in parsed.get("locals", []):
                module.locals.update({key: value for key, value in entry.items() if key != "__comments__"})
        return module

    def resource(self, type_: str, name: str) -> dict[str, Any]:
        assert (type_, name) in self.resources, f"{self.path.name}: no resource {type_}.{name}"
        return self.resources[(type_, name)]

    def of_type(self, type_: str) -> dict[str, dict[str, Any]]:
        return {name: body for (kind, name), body in self.resources.items() if kind == type_}


@pytest.fixture(scope="session")
def terraform() -> dict[str, TerraformModule]:
    """Every Terraform directory, keyed by its path under infra/terraform (e.g. "modules/cache")."""
    directories = sorted({tf_file.parent for tf_file in TERRAFORM_ROOT.rglob("*.tf") if ".terraform" not in tf_file.parts})
    return {str(directory.relative_to(TERRAFORM_ROOT)): TerraformModule.load(directory) for directory in directories}


@pytest.fixture(scope="session")
def settings_env_names() -> frozenset[str]:
    """Environment variable names the service's settings read (upper-cased field names)."""
    return frozenset(name.upper() for name in Settings.model_fields)
