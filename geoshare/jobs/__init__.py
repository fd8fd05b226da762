"""Background jobs: work too long for one request (batch geocoding of CSV files), tracked in ``gs.job``.

A job runs in a thread of the worker that accepted it; its state and files live in the database, so
any worker can report on it and serve its result.
"""
