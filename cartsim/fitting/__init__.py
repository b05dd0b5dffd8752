"""Fitting the model to observed kinetics (individual and population fits)."""
