"""The address database (schema ``addr``): bulk loading and address codes."""
