"""The ``geoshare`` command-line tool."""
