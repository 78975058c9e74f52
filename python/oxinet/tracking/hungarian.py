"""Optimal assignment (the Hungarian method) for rectangular cost matrices, O(n^2 m).

Shortest-augmenting-path form with dual potentials u (rows) and v (columns): after a
greedy warm start (row reduction, rows matched to their free minimum column), the other
rows are added one at a time; each addition grows a Dijkstra-like tree over the columns using the
reduced costs ``c[i, j] - u[i] - v[j] >= 0``, updates the potentials by the smallest
slack so that a zero-slack column is reached, and flips the alternating path ending at a
free column. With n <= m rows every row is assigned (a wide matrix is handled as its
transpose); the total cost is minimal. The inner scan over columns is a NumPy vector
operation, so n = m = 500 takes well under a second.
"""

from __future__ import annotations

import numpy as np


def linear_sum_assignment(cost, maximize: bool = False):
    """Minimum-cost assignment of rows to columns.

    cost: (n, m) real matrix with finite entries. Returns ``(row_ind, col_ind)``, int64
    arrays of length min(n, m), sorted by row, such that ``cost[row_ind, col_ind].sum()`` is
    minimal (maximal with ``maximize=True``) over all assignments of min(n, m) pairs.
    Same contract as ``scipy.optimize.linear_sum_assignment``.
    """
    c = np.asarray(cost)
    if c.dtype == object or not (np.issubdtype(c.dtype, np.number) or c.dtype == bool) \
            or np.issubdtype(c.dtype, np.complexfloating):
        raise TypeError(f"linear_sum_assignment: 'cost' must be a real numeric matrix, got dtype {c.dtype}")
    if c.ndim != 2:
        raise ValueError(f"linear_sum_assignment: 'cost' must be 2-D, got shape {c.shape}")
    c = c.astype(np.float64)
    if not np.all(np.isfinite(c)):
        raise ValueError("linear_sum_assignment: 'cost' contains NaN or infinite entries")
    if maximize:
        c = -c
    transposed = c.shape[0] > c.shape[1]
    if transposed:
        c = c.T
    n, m = c.shape
    if n == 0:
        e = np.zeros(0, np.int64)
        return e, e.copy()
    # 1-based bookkeeping: column 0 is a virtual column holding the row being inserted
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    p = np.zeros(m + 1, np.int64)      # p[j]: row assigned to column j (0 = free)
    way = np.zeros(m + 1, np.int64)    # predecessor column on the alternating tree
    a = np.zeros((n + 1, m + 1))
    a[1:, 1:] = c
    # Warm start: row reduction u_i = min_j c_ij keeps every reduced cost >= 0 and makes each
    # row's minimum tight; a row whose minimum column is still free is matched there at once
    # (v stays 0 on free columns, as the augmentation below requires).
    u[1:] = c.min(axis=1)
    pending = []
    for i, j in enumerate(np.argmin(c, axis=1), start=1):
        if p[j + 1] == 0:
            p[j + 1] = i
        else:
            pending.append(i)
    for i in pending:
        p[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used
            free[0] = False
            cur = a[i0] - u[i0] - v
            better = free & (cur < minv)
            minv[better] = cur[better]
            way[better] = j0
            cand = np.where(free, minv, np.inf)
            j1 = int(np.argmin(cand))
            delta = cand[j1]
            # potentials: tree rows up, tree columns down, slack of the rest shrinks
            u[p[used]] += delta
            v[used] -= delta
            minv[free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:  # augment along the path back to the virtual column
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    cols = np.flatnonzero(p[1:]) + 0
    rows = p[1:][cols] - 1
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows)
    return rows[order].astype(np.int64), cols[order].astype(np.int64)
