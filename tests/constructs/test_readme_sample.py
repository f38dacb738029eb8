"""The README's sample of using the constructs from another CDK app, run exactly as printed there."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.constructs.conftest import write_model_dir

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Using the constructs from another CDK app"


def readme_sample() -> str:
    """The first Python code block of the README's section on using the constructs, as printed there."""
    text = README.read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    match = re.search(r"```python\n(.*?)```", text[text.index(SECTION) :], re.DOTALL)
    assert match, f"README.md's section {SECTION!r} has no python code block"
    return match.group(1)


def test_readme_sample_synthesizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_model_dir(tmp_path / "model")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CDK_OUTDIR", raising=False)
    namespace: dict[str, object] = {}
    exec(compile(readme_sample(), "README.md", "exec"), namespace)
    outdir = Path(namespace["app"].outdir)  # type: ignore[attr-defined]
    template = json.loads((outdir / "ChurnModelStack.template.json").read_text())
    types = sorted(r["Type"] for r in template["Resources"].values())
    assert types.count("AWS::SageMaker::Endpoint") == 1
    assert types.count("AWS::ApplicationAutoScaling::ScalingPolicy") == 1
