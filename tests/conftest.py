"""Shared fixtures: writing a scenario and its topology as YAML files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ScenarioWriter = Callable[[Path, dict[str, Any], dict[str, Any]], Path]

TOPOLOGY_FILE = "topology.yaml"
SCENARIO_FILE = "scenario.yaml"


def _write_scenario(
    folder: Path, topology: dict[str, Any], scenario: dict[str, Any]
) -> Path:
    """Dump `topology` and `scenario` into `folder`; return the scenario's path.

    The scenario's ``topology`` key is set to the topology file written beside
    it, so callers leave it out.
    """
    folder.mkdir(parents=True, exist_ok=True)
    (folder / TOPOLOGY_FILE).write_text(yaml.safe_dump(topology, sort_keys=False))
    path = folder / SCENARIO_FILE
    document = {"topology": TOPOLOGY_FILE, **scenario}
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def write_scenario() -> ScenarioWriter:
    """A function ``(folder, topology_dict, scenario_dict) -> scenario path``.

    It is a plain function with no state, so the fixture is session-scoped:
    module-scoped fixtures (with ``tmp_path_factory``) and hypothesis tests (with
    a fresh temporary folder per example) can use it as well as ``tmp_path``.
    """
    return _write_scenario
