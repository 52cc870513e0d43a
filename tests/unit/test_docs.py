"""The docs stay true to the code: links resolve, every flag, variable and scenario key is
documented, and nothing points to a file the repository does not have."""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

import pytest
from pydantic import BaseModel

from kubedrf.cli.main import build_parser
from kubedrf.master.settings import MasterSettings
from kubedrf.simulator import scenario

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "charts/kubedrf/CHANGELOG.md"]


def _tracked() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return [ROOT / line for line in listed.stdout.splitlines() if (ROOT / line).is_file()]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_relative_link_resolves(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" not in target:
            assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_nothing_refers_to_a_design_file_outside_the_repository() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in _tracked()
        if path != Path(__file__)
        and path.suffix in {".py", ".md", ".yaml", ".txt", ".tpl", ".json"}
        and "DESIGN.md" in path.read_text(errors="ignore")
    ]
    assert offenders == []


def _master_flags() -> list[str]:
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    master_parser: argparse.ArgumentParser = commands.choices["master"]
    return [o for a in master_parser._actions for o in a.option_strings if o != "--help"]


def test_the_settings_page_documents_every_flag_and_variable() -> None:
    page = (DOCS / "settings.md").read_text()
    for flag in _master_flags():
        if flag.startswith("--"):
            assert f"`{flag}`" in page, flag
    for name in MasterSettings.model_fields:
        assert f"`KUBEDRF_{name.upper()}`" in page, name


def _keys(model: type[BaseModel]) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


@pytest.mark.parametrize(
    "model",
    [
        scenario.Scenario,
        scenario.ScenarioNode,
        scenario.ScenarioRole,
        scenario.ScenarioQuota,
        scenario.ScenarioReservation,
        scenario.ScenarioFramework,
        scenario.ScenarioTasks,
        scenario.ScenarioEvent,
    ],
    ids=lambda m: m.__name__,
)
def test_the_scenario_page_documents_every_key(model: type[BaseModel]) -> None:
    page = (DOCS / "scenarios.md").read_text()
    for key in _keys(model):
        assert f"`{key}`" in page, f"docs/scenarios.md does not mention {key}"


def test_error_messages_point_to_pages_that_exist() -> None:
    sources = (ROOT / "operator").rglob("*.py")
    mentioned = {m for path in sources for m in re.findall(r"docs/[\w-]+\.md", path.read_text())}
    assert mentioned, "no message points to the docs"
    for page in mentioned:
        assert (ROOT / page).is_file(), page
