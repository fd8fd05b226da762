"""Use cases composed from engine calls, shared by the HTTP API and the CLI."""
