"""The one parser for sizes written on a command line: ``HxW`` (and ``NxHxW`` where a batch is allowed)."""

from __future__ import annotations

MIN_SIDE = 32  # the restorers' smallest input side


def parse_dims(text: str, lengths: tuple[int, ...] = (2,)) -> tuple[int, ...]:
    """'512x384' -> (512, 384); ``lengths``: how many numbers may be given (2: HxW, 3: NxHxW)."""
    form = " or ".join({2: "HxW", 3: "NxHxW"}[n] for n in lengths)
    try:
        nums = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"{text!r}: expected {form}, e.g. 512x512") from None
    if len(nums) not in lengths:
        raise ValueError(f"{text!r}: expected {form}, e.g. 512x512")
    if min(nums) < 1:
        raise ValueError(f"{text!r}: every dimension must be positive")
    return nums


def parse_shape(text: str) -> tuple[int, int]:
    """'HxW' -> (H, W); both at least 32 (the restorer's minimum)."""
    h, w = parse_dims(text)
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"shape {text!r}: both sides must be at least {MIN_SIDE}")
    return h, w
