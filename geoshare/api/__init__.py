"""The HTTP API: composes the layer and address engines behind OGC API conventions."""
