"""Runs the allocator in virtual time against scenario files (``kubedrf simulate``)."""

from kubedrf.simulator.engine import SimulationResult, simulate
from kubedrf.simulator.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = [
    "Scenario",
    "ScenarioError",
    "SimulationResult",
    "load_scenario",
    "parse_scenario",
    "simulate",
]
