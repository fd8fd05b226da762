"""Place names (地名): points of interest and landmarks, their search, suggest and resolution.

``model`` (what a place is), ``store`` (the ``addr.place`` table), ``csvfile`` and ``osm``
(readers), ``locate`` (points for places that only have an address), ``search`` (a name index),
``index`` (the in-memory place index), ``suggest`` (as-you-type over places and the address
index), ``resolve`` (place names inside a geocoding query).
"""
