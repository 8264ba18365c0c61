"""Counts and percentages of instances (``3``, ``"25%"``) and the batch plans built on them."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from pipeline.rollouterrors import OptionError

#: The JSON Schema pattern of a percentage such as ``25%`` or ``12.5%``.
PERCENT_PATTERN = r"^[0-9]+(\.[0-9]+)?%$"

#: The fix for an amount that is neither a count nor a percentage, shared with the
#: schema's error messages.
AMOUNT_HELP = "use a count such as 3 or a percentage such as '25%'"

_PERCENT = re.compile(r"(\d+(?:\.\d+)?)%")


def parse_amount(
    value: object, total: int, *, option: str, round_up: bool, allow_zero: bool = True
) -> int:
    """Turn a count (``3``) or a percentage of ``total`` (``"25%"``) into a count.

    Percentages are exact (``"10%"`` of 30 is 3) and round up when ``round_up`` is set,
    down otherwise. Raises OptionError, naming ``option``, for a negative count, a
    percentage above 100, any other value, and 0 or 0% when ``allow_zero`` is false.
    """
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise OptionError(f"{option}: {value!r} is not valid: {AMOUNT_HELP}")

    if isinstance(value, int) or value.strip().isdigit():
        count = int(value)
        if count < 0 or (count == 0 and not allow_zero):
            lowest = 0 if allow_zero else 1
            raise OptionError(f"{option}: {value!r} is not valid: use {lowest} or more")
        return count

    from fractions import Fraction  # Imported here: it imports decimal, slow to import.

    match = _PERCENT.fullmatch(value.strip())
    if match is None:
        raise OptionError(f"{option}: {value!r} is not valid: {AMOUNT_HELP}")
    share = Fraction(match.group(1))
    if share > 100 or (share == 0 and not allow_zero):
        lowest_share = "0%" if allow_zero else "more than 0%"
        raise OptionError(f"{option}: {value!r} is not valid: use {lowest_share} up to 100%")

    exact = share * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def batch_sizes(total: int, batch: object) -> list[int]:
    """Return the size of each batch that updates ``total`` instances, in order.

    ``batch`` is a count, a percentage of ``total`` (rounded up), or a list of them
    where the last entry repeats until every instance has a batch. Each batch has at
    least one instance, and the last one takes only what remains. Raises OptionError
    for an empty list or an invalid entry.
    """
    if isinstance(batch, Sequence) and not isinstance(batch, str):
        specs = list(batch)
        names = [f"batch[{index}]" for index in range(len(specs))]
    else:
        specs = [batch]
        names = ["batch"]
    if not specs:
        raise OptionError("batch: the list is empty: give at least one batch size")
    counts = [
        parse_amount(spec, total, option=name, round_up=True, allow_zero=False)
        for spec, name in zip(specs, names, strict=True)
    ]

    sizes: list[int] = []
    remaining = total
    while remaining > 0:
        size = min(max(counts[min(len(sizes), len(counts) - 1)], 1), remaining)
        sizes.append(size)
        remaining -= size
    return sizes


def split_batches(instances: Sequence[str], batch: object) -> list[list[str]]:
    """Split ``instances`` into consecutive batches as :func:`batch_sizes` plans them."""
    batches = []
    start = 0
    for size in batch_sizes(len(instances), batch):
        batches.append(list(instances[start : start + size]))
        start += size
    return batches


def instances_for_weight(weight: int, total: int) -> int:
    """Return how many of ``total`` instances run a canary that gets ``weight`` percent.

    The share rounds up, so any weight above 0 gets at least one instance.
    """
    from fractions import Fraction

    if not 0 <= weight <= 100:
        raise OptionError(f"set_weight: {weight} is not valid: use 0 to 100")
    return math.ceil(Fraction(weight * total, 100))
