"""Pure domain logic: the standards graph, the catalog, the learner core, the planner and the simulator.

This package imports only the standard library, numpy, networkx, pydantic and ``configs``.
"""
