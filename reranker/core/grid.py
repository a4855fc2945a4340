"""The one dense ``[Q, C]`` builder: per-candidate values (query row, candidate column) into a grid.

Validation (per batch) and evaluation (per evaluation set) both score a flat list of candidates and rank
each query's row; padding cells get ``fill`` (``-inf`` scores never rank above a candidate; a ``False`` mask).
"""

from __future__ import annotations

import torch


def to_grid(
    rows: torch.Tensor,
    columns: torch.Tensor,
    values: torch.Tensor,
    shape: tuple[int, int],
    fill: float | bool,
) -> torch.Tensor:
    """``values`` (``[N]``) at ``(rows[i], columns[i])`` of a ``shape`` (``[Q, C]``) grid filled with ``fill``,
    in ``values``' dtype."""
    grid = torch.full(shape, fill, dtype=values.dtype, device=values.device)  # [Q, C]
    grid[rows, columns] = values
    return grid


def grid_positions(lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column of every candidate of queries with ``lengths`` candidates each, query by query: ``[N]``."""
    rows = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths, dtype=torch.long))
    columns = torch.cat([torch.arange(length) for length in lengths]) if lengths else rows
    return rows, columns
