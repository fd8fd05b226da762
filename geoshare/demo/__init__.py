"""The demo city: a generated, deterministic Beijing on real division codes and district boundaries."""
