"""Vector tiles (MVT) of published layers: tile matrix sets, the one-statement tile SQL, a tile cache."""
