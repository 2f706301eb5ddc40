"""Training: interaction data loading, the training loop, evaluation and tracking.

Data enters through :func:`training.loaders.load_interactions`, which returns an
:class:`training.interactions.InteractionTable` (one row per attempt, leakage-free) and a
:class:`training.load_report.LoadReport`.
"""
