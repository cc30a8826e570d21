"""Level layouts for the gridworlds, generated once per environment into a seeded pool.

Every gridworld step is a table look-up, so all the geometry is precomputed here per layout:

- ``walls``      bool  [L, H*W]        the layout (cells outside the level are walls);
- ``next_cell``  int64 [L, H*W, 4]     where each action leads from each cell (walls block);
- ``dist``       uint8 [L, H*W, H*W]   all-pairs shortest-path lengths (255 = unreachable);
- ``start``, ``end`` int64 [L]         the agent's start cell and the level's end cell
  (the maze's top-right corner, the coin level's right end).

Layouts are drawn by Python loops and the tables built once per pool; stepping never loops. The
distance table, the one that costs (about 1.3 s for 5000 layouts on one core), is built on first
use: a pool that is only observed, never stepped (the ``probe`` split that ``mesa.detect`` reads),
never needs it.

Pools are built on the CPU (once per process and seed) and copied to a GPU on demand
(:meth:`LevelPool.to`): the copy is kept beside the CPU pool, so every environment on that device
shares it, and its distance table is the CPU one's, moved there when first used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path
from torch import Tensor

#: Action order: up, down, left, right (as row/column offsets).
ACTIONS = ((-1, 0), (1, 0), (0, -1), (0, 1))
ACTION_NAMES = ("up", "down", "left", "right")
UNREACHABLE = 255


@dataclass
class LevelPool:
    height: int
    width: int
    walls: Tensor
    next_cell: Tensor
    start: Tensor
    end: Tensor
    #: the pool on the CPU this one is a copy of (None: this is it)
    _cpu: LevelPool | None = field(default=None, repr=False, compare=False)
    #: this pool's copies on other devices, by device
    _copies: dict[torch.device, LevelPool] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def dist(self) -> Tensor:
        """All-pairs shortest-path lengths [L, H*W, H*W] uint8 (computed on first use, on the
        CPU; a copy on another device moves the CPU pool's table)."""
        if self._cpu is not None:
            return self._cpu.dist.to(self.device)
        return shortest_paths(self.next_cell.numpy())

    @property
    def device(self) -> torch.device:
        return self.walls.device

    def to(self, device: torch.device | str) -> LevelPool:
        """This pool on ``device``: itself there, else a copy made once and kept."""
        device = torch.device(device)
        if device == self.device:
            return self
        if self._cpu is not None:
            return self._cpu.to(device)
        if device not in self._copies:
            self._copies[device] = LevelPool(
                height=self.height,
                width=self.width,
                walls=self.walls.to(device),
                next_cell=self.next_cell.to(device),
                start=self.start.to(device),
                end=self.end.to(device),
                _cpu=self,
            )
        return self._copies[device]

    @property
    def walls_float(self) -> Tensor:
        """``walls`` as float32 (cached: observations copy it every step)."""
        if not hasattr(self, "_walls_float"):
            self._walls_float = self.walls.float()
        return self._walls_float

    def __len__(self) -> int:
        return int(self.walls.shape[0])


def carve_maze(rows: int, cols: int, rng: np.random.Generator, loop_fraction: float) -> np.ndarray:
    """A ``rows x cols`` (odd sizes) maze as a bool wall grid: randomized depth-first search over
    the cells at even coordinates, then a fraction of the remaining inner walls knocked out to
    make loops (perfect mazes are much harder for PPO to learn)."""
    walls = np.ones((rows, cols), dtype=bool)
    cr, cc = (rows + 1) // 2, (cols + 1) // 2
    seen = np.zeros((cr, cc), dtype=bool)
    stack = [(cr - 1, 0)]
    seen[cr - 1, 0] = True
    walls[2 * (cr - 1), 0] = False
    while stack:
        r, c = stack[-1]
        options = [
            (r + dr, c + dc)
            for dr, dc in ACTIONS
            if 0 <= r + dr < cr and 0 <= c + dc < cc and not seen[r + dr, c + dc]
        ]
        if not options:
            stack.pop()
            continue
        nr, nc = options[rng.integers(len(options))]
        seen[nr, nc] = True
        walls[2 * nr, 2 * nc] = False
        walls[r + nr, c + nc] = False  # the wall between the two cells
        stack.append((nr, nc))
    inner = [
        (r, c)
        for r in range(rows)
        for c in range(cols)
        if walls[r, c] and (r % 2) != (c % 2)  # walls between two cells
    ]
    for i in rng.permutation(len(inner))[: int(loop_fraction * len(inner))]:
        walls[inner[i]] = False
    return walls


def neighbours(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """For every cell and action of an open ``height x width`` grid: the cell the move leads to
    (the cell itself where it would leave the grid) and whether it stays inside, both [H*W, 4]."""
    cells = np.arange(height * width)
    rows, cols = np.divmod(cells, width)
    target = np.empty((len(cells), len(ACTIONS)), dtype=np.int64)
    inside = np.empty((len(cells), len(ACTIONS)), dtype=bool)
    for a, (dr, dc) in enumerate(ACTIONS):
        r2, c2 = rows + dr, cols + dc
        inside[:, a] = (r2 >= 0) & (r2 < height) & (c2 >= 0) & (c2 < width)
        target[:, a] = np.where(inside[:, a], r2 * width + c2, cells)
    return target, inside


def build_pool(layouts: list[tuple[np.ndarray, int, int]], height: int, width: int) -> LevelPool:
    """The :class:`LevelPool` of ``(walls [H, W], start, end)`` layouts: the move table for all
    layouts at once; the distance table waits for first use (:func:`shortest_paths`)."""
    cells = np.arange(height * width)
    walls = np.stack([w.reshape(-1) for w, _, _ in layouts])  # [L, HW]
    target, inside = neighbours(height, width)
    ok = inside & ~walls[:, target] & ~walls[:, :, None]  # [L, HW, 4]
    nxt = np.where(ok, target, cells[:, None])
    return LevelPool(
        height=height,
        width=width,
        walls=torch.from_numpy(walls),
        next_cell=torch.from_numpy(nxt),
        start=torch.tensor([start for _, start, _ in layouts], dtype=torch.long),
        end=torch.tensor([end for _, _, end in layouts], dtype=torch.long),
    )


def shortest_paths(next_cell: np.ndarray, chunk: int = 16) -> Tensor:
    """All-pairs shortest-path lengths [L, H*W, H*W] uint8 (``UNREACHABLE`` where none) of the
    layouts whose move table is ``next_cell`` [L, H*W, 4].

    One breadth-first search per cell on ``chunk`` layouts at a time joined into one
    block-diagonal graph (one graph per layout spent most of its time in per-call overhead: 4-5 s
    for 5000 layouts on one core against about 1 s now).
    """
    n_layouts, n_cells = next_cell.shape[:2]
    cells = np.arange(n_cells)
    dist = np.empty((n_layouts, n_cells, n_cells), dtype=np.uint8)
    for first in range(0, n_layouts, chunk):
        part = next_cell[first : first + chunk]
        k, size = len(part), len(part) * n_cells
        offset = (np.arange(k) * n_cells)[:, None, None]
        src = np.broadcast_to(cells[None, :, None] + offset, part.shape).reshape(-1)
        dst = (part + offset).reshape(-1)
        keep = src != dst  # moves that stay put are not edges
        graph = csr_matrix((np.ones(keep.sum()), (src[keep], dst[keep])), (size, size))
        d = shortest_path(graph, unweighted=True).reshape(k, n_cells, k, n_cells)
        d = d[np.arange(k), :, np.arange(k), :]  # each layout's own block
        d[~np.isfinite(d)] = UNREACHABLE
        dist[first : first + k] = np.minimum(d, UNREACHABLE).astype(np.uint8)
    return torch.from_numpy(dist)


def distances_to(walls: Tensor, goal: Tensor) -> Tensor:
    """Shortest-path lengths [n, H, W] from every cell to ``goal`` [n] (flat cell indices) on
    arbitrary ``walls`` [n, H, W] (float ``UNREACHABLE`` where no path leads; walls included).

    For layouts outside a pool (counterfactual pairs edit walls): a breadth-first search run
    for all ``n`` grids at once as repeated relaxation, ``d <- min(d, 1 + min(neighbours))``,
    until nothing changes (one round per step of the longest shortest path, at most ``H*W``).
    """
    n, h, w = walls.shape
    inf = float(UNREACHABLE)
    d = torch.full((n, h * w), inf)
    d[torch.arange(n), goal] = 0.0
    d = d.view(n, h, w)
    open_ = ~walls.bool()
    for _ in range(h * w):
        p = torch.nn.functional.pad(d, (1, 1, 1, 1), value=inf)
        near = torch.stack([p[:, :-2, 1:-1], p[:, 2:, 1:-1], p[:, 1:-1, :-2], p[:, 1:-1, 2:]])
        new = torch.where(open_, torch.minimum(d, near.min(0).values + 1), d).clamp(max=inf)
        if torch.equal(new, d):
            break
        d = new
    return d


def actions_towards(walls: Tensor, pos: Tensor, goal: Tensor) -> Tensor:
    """Bool [n, 4]: the actions (order of :data:`ACTIONS`) on a shortest path from cell ``pos``
    to cell ``goal`` in each of the ``walls`` [n, H, W] grids; none where ``goal`` is unreachable
    or already reached. Moves into walls or off the grid stay put and so never count."""
    n, h, w = walls.shape
    d = distances_to(walls, goal).view(n, -1)
    target, inside = (torch.from_numpy(a)[pos] for a in neighbours(h, w))  # [n, 4]
    here = d[torch.arange(n), pos].unsqueeze(1)
    return inside & (d.gather(1, target) < here) & (here < UNREACHABLE)
