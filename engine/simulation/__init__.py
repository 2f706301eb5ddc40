"""Simulated learners, the environment protocol, baseline planners and planner evaluation.

>>> from engine.simulation import BASELINES, evaluate, goal_for_grade   # doctest: +SKIP
>>> evaluate({**BASELINES, "zpd": make_zpd}, graph, catalog, learners=200, horizon=60, seed=0,
...          goal=goal_for_grade(graph, 4))                           # doctest: +SKIP

See ``docs/simulator.md`` for the protocol and the learner model.
"""

from engine.simulation.baselines import (
    BASELINES,
    PolicyFactory,
    RandomPolicy,
    TopoPolicy,
    ZPDESConfig,
    ZPDESPolicy,
    items_by_unit,
    route_area,
)
from engine.simulation.environment import Environment, Outcome, Policy, SimulatedEnvironment, SimulationError
from engine.simulation.evaluate import (
    PolicyRun,
    ReferenceModel,
    bootstrap_ci,
    evaluate,
    goal_for_grade,
    misspecify,
    paired_difference,
    run_policy,
    simulate,
    summarize,
)
from engine.simulation.learners import (
    DEFAULT_MODALITIES,
    LearnerProfile,
    ModalityParams,
    SimulatedLearner,
    SimulatorConfig,
    TruthIndex,
    draw_learner,
    draw_learners,
)

__all__ = [
    "BASELINES",
    "DEFAULT_MODALITIES",
    "Environment",
    "LearnerProfile",
    "ModalityParams",
    "Outcome",
    "Policy",
    "PolicyFactory",
    "PolicyRun",
    "RandomPolicy",
    "ReferenceModel",
    "SimulatedEnvironment",
    "SimulatedLearner",
    "SimulationError",
    "SimulatorConfig",
    "TopoPolicy",
    "TruthIndex",
    "ZPDESConfig",
    "ZPDESPolicy",
    "bootstrap_ci",
    "draw_learner",
    "draw_learners",
    "evaluate",
    "goal_for_grade",
    "items_by_unit",
    "misspecify",
    "paired_difference",
    "route_area",
    "run_policy",
    "simulate",
    "summarize",
]
