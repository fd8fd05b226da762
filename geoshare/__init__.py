"""GeoShare: the city's shared spatial foundation (base map, address database, departmental layers)."""

__version__ = "0.1.0"
