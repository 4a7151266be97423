"""checkov over infra/terraform: no failed check, and every skip justified inline.

checkov runs from its own virtualenv (.venv-checkov, built by `make install`
from infra/requirements-checkov.lock) because its pins conflict with the app's.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import Any

import pytest

from tests.infra.conftest import REPO_ROOT, TERRAFORM_ROOT

CHECKOV = REPO_ROOT / ".venv-checkov" / "bin" / "checkov"
SKIP_COMMENT = re.compile(r"#\s*checkov:skip=(?P<check>[A-Z0-9_]+)(?::(?P<reason>.*))?")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    if not CHECKOV.is_file():
        pytest.fail(f"{CHECKOV.relative_to(REPO_ROOT)} is missing: run `make install` (it builds .venv-checkov)")
    # --skip-download: no Prisma Cloud calls, the scan uses only the bundled policies.
    completed = subprocess.run(
        [str(CHECKOV), "-d", str(TERRAFORM_ROOT), "--framework", "terraform", "--skip-download", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        check=False,
    )
    try:
        parsed = json.loads(completed.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON report (exit {completed.returncode}): {completed.stderr[-2000:]}")
    assert isinstance(parsed, dict), "one framework scanned, one report expected"
    return parsed


def test_checkov_scans_every_file_and_fails_no_check(report: dict[str, Any]) -> None:
    failed = [
        f"{check['check_id']} {check['resource']} ({check['file_path']}:{check['file_line_range'][0]})"
        for check in report["results"]["failed_checks"]
    ]
    assert failed == []
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] >= 50 and summary["passed"] >= 200, summary  # it really scanned the modules


def test_every_skip_is_an_inline_comment_with_a_reason(report: dict[str, Any]) -> None:
    comments = [
        (path.relative_to(TERRAFORM_ROOT), match)
        for path in TERRAFORM_ROOT.rglob("*.tf")
        for match in SKIP_COMMENT.finditer(path.read_text())
    ]
    for path, match in comments:
        reason = (match["reason"] or "").strip()
        assert len(reason.split()) >= 6, f"{path}: checkov:skip={match['check']} needs a real reason, got {reason!r}"
    skipped = {check["check_id"] for check in report["results"]["skipped_checks"]}
    # Nothing is skipped except through those comments, and no comment is stale.
    assert skipped == {match["check"] for _, match in comments}
    for check in report["results"]["skipped_checks"]:
        assert check["check_result"].get("suppress_comment"), check["check_id"]
