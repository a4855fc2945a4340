"""The one in-corpus negative sampler: distinct random items of a pool that a predicate does not exclude.

Training fills groups with it and preparation draws random negatives with it, so both consume a seeded
``random.Random`` the same way.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

Item = TypeVar("Item", bound=Hashable)


def fill_distinct(
    rng: random.Random,
    pool: Sequence[Item],
    chosen: list[Item],
    count: int,
    excluded: Callable[[Item], bool],
) -> list[Item]:
    """``chosen`` extended in place to ``count`` distinct items of ``pool`` that are not ``excluded`` (fewer
    when the pool runs out); returns ``chosen``.

    Rejection sampling is fast while most of the pool is eligible; after ``8 * count + 32`` draws a full
    scan covers the rest, so a nearly exhausted pool still ends.
    """
    taken = set(chosen)
    attempts = 0
    while len(chosen) < count and attempts < 8 * count + 32:
        item = pool[rng.randrange(len(pool))]
        attempts += 1
        if item not in taken and not excluded(item):
            chosen.append(item)
            taken.add(item)
    if len(chosen) < count:
        eligible = [item for item in pool if item not in taken and not excluded(item)]
        chosen.extend(rng.sample(eligible, min(count - len(chosen), len(eligible))))
    return chosen
