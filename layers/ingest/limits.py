"""What reading one source may cost: plain numbers the caller passes (the platform derives them
from its upload limit); the engine's defaults only stop bombs, for trusted callers such as the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from layers.errors import InvalidInput

MiB = 1024**2


@dataclass(frozen=True)
class ReadLimits:
    """``max_bytes`` bounds the data read: what an archive expands to, or a loose file with its
    sidecars. The reader holds all of it in memory as a frame, so this is also the memory bound.
    ``max_ratio``: an archive member may expand at most that many times the compressed bytes it has
    consumed, once it is past ``ratio_floor`` bytes (a small table of blanks compresses better).
    Both are counted on the bytes as they come out, never taken from headers an attacker writes."""

    max_bytes: int = 16 * 1024**3
    max_ratio: float = 100.0
    ratio_floor: int = 16 * MiB


DEFAULT_LIMITS = ReadLimits()


def size_text(n: float) -> str:
    return f"{n / MiB:,.0f} MiB" if n >= MiB else f"{n:,.0f} bytes"


def too_large(label: str, what: str, limits: ReadLimits) -> InvalidInput:
    return InvalidInput(
        f"{label}: {what} is larger than the {size_text(limits.max_bytes)} an upload may hold; "
        "split the data into several layers",
        field="file",
    )
