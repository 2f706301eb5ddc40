"""Learner-state models behind one interface (see models.base)."""
