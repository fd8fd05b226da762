"""The base map: several published base layers served as one multi-layer vector tile source."""
