"""Measuring the address engine on a city's own address database.

A city that loads its addresses can see how well GeoShare geocodes *its* data, not the demo's::

    from geocode.evaluation.noise import make_cases, read_known, read_rows
    from geocode.evaluation.score import evaluate

    rows, known = read_rows(conn), read_known(conn)
    cases = make_cases(rows, numpy.random.default_rng(1), 5000, known=known)
    report = evaluate(lambda q: geocode(index, q), cases)
    print(report.to_markdown())

``noise`` writes each real address the way people type it (dropped or old division names, typos,
Chinese numerals, full-width digits, tails like 2单元301室 …) and adds addresses that do not exist;
``score`` checks the answers against the true points. ``python -m benchmarks.geocode_quality``
does all of this against a database and keeps the figures.
"""
