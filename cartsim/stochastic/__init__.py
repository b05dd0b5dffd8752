"""Stochastic (exact/tau-leap hybrid) and agent-based engines of the ``cd7`` reaction network."""
