"""Importing a city's address file (CSV or GeoPackage of address points) as the address database.

One row per door address or building. Each row is checked and resolved to its divisions (codes,
else names under its district, else the point's location), road, compound and building; rows
that cannot be placed are rejected with their line number (CSV: the header is line 1) or feature
number (vector files, from 1) and a reason, everything else becomes the five ``addr`` tables.
Roads, compounds and buildings are derived from the address points themselves, since an address
register carries no road centrelines: a road is the principal axis through its points, a
compound the hull of its points, a building a small square.

All work is column-wise (pandas, numpy, shapely); Python loops run over roads or divisions,
never rows. Codes come from stable identifiers (road codes from a hash of the road name), so a
re-import of the same file in any row order gives the same address codes. Writing goes through
:func:`replace_address_database` in the caller's transaction: all or nothing.
"""

from geocode.addressdb.importing.reading import IMPORT_KEY, RawAddresses, input_crs, read_address_file
from geocode.addressdb.importing.run import (
    ImportRefused,
    ImportReport,
    import_address_file,
    read_divisions,
    write_rejects,
)
from geocode.addressdb.importing.tables import build_tables

__all__ = [
    "IMPORT_KEY",
    "ImportRefused",
    "ImportReport",
    "RawAddresses",
    "build_tables",
    "import_address_file",
    "input_crs",
    "read_address_file",
    "read_divisions",
    "write_rejects",
]
