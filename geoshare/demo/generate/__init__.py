"""Generators of the demo city, one job per module; all take one seeded ``numpy.random.Generator``."""
