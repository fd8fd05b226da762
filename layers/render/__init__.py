"""Server-side raster tiles (PNG/WebP) drawn with Mapnik, for clients that cannot draw vector tiles.

``engine`` imports Mapnik safely and turns styled features into image bytes, ``fonts`` finds a CJK
font at run time, ``styles`` writes the Mapnik styles (the base map palettes, a default per-geometry
style for any layer), ``features`` fetches one tile's features for every drawn layer in one SQL
statement and ``tiles`` ties them together.
"""
