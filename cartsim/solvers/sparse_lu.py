r"""Sparse LU of ``I - c J`` in a fill-reducing pivot order, for the BDF loop's Newton solves.

The BDF loop factors ``A = I - c J`` a few dozen times per patient and solves with the
factors once per Newton iteration (some 850 solves per ``cd7`` patient-year against ~30
factorisations and 4 Jacobians), so a solve's cost, set by the non-zeros of ``L`` and
``U``, matters most. In the natural state order the 25-state ``cd7`` Jacobian (about 95
non-zeros with the diagonal) fills in to ~145 off-diagonal factor entries (425
elimination flops); in the order chosen here, ~75 (83 flops).

Three kernels:

* :func:`analyse` (after every Jacobian evaluation): the pivot order by the diagonal
  Markowitz rule on the non-zero pattern of ``J`` plus the diagonal (at each elimination
  step the remaining diagonal entry with the fewest ``(row count - 1)(column count - 1)``
  off-diagonal products, ties broken by the smaller ``row + column`` count, then the lower
  index; Markowitz 1957, Duff, Erisman & Reid 2017, Ch. 7), and the symbolic factors,
  fill-in included. Patterns are bit sets, so ``n <= MAX_N``; beyond that the analysis is
  marked unusable. A pattern equal to the last analysed one is not analysed again.
* :func:`factor`: numeric factorisation of ``A`` (given dense) over that pattern with
  the pivots on the diagonal (a *symmetric* permutation), accepted while every pivot is
  finite, non-zero and at least ``PIVOT_TOL`` times the largest entry below it in its
  column (threshold pivoting with KLU's default tolerance). Otherwise it reports failure
  and the caller factors with row pivoting instead (``cartsim.solvers.rodas.lu_factor``),
  which also decides whether the matrix is singular or non-finite: statuses are those of
  the dense factorisation. The factors are then gathered into compact arrays in the
  order the solves read them.
* :func:`solve`: row-oriented triangular solves streaming through those arrays.

Only the rounding of the Newton corrections differs from the dense factorisation in
the natural order; the simplified Newton iteration converges to the same solution of the
BDF equations.

Storage. ``sym`` (int64, ``sym_size(n)``): ``sym[0]`` is 1 for a usable analysis; then
``perm`` (``n``: the state of pivot ``s``), the pointers ``lp``, ``up``, ``cp`` (``n + 1``
each, by pivot) into the index lists ``lidx`` (columns of row ``perm[s]`` of ``L``),
``uidx`` (columns of row ``perm[s]`` of ``U``) and ``cidx`` (rows of column ``perm[s]`` of
``L``), ``n (n - 1) / 2`` entries each at most; then the analysed pattern (``n`` row bit
sets). ``vals`` (float64, ``n * n``): ``1 / U[k, k]`` by pivot, then the values of
``L`` and of ``U`` in list order.

References
----------
H. M. Markowitz, "The elimination form of the inverse and its application to linear
programming", Management Science 3 (1957) 255-269.

I. S. Duff, A. M. Erisman, J. K. Reid, *Direct Methods for Sparse Matrices*, 2nd ed.,
Oxford University Press 2017, Ch. 7.

T. A. Davis, E. Palamadai Natarajan, "Algorithm 907: KLU, a direct sparse solver for
circuit simulation problems", ACM Trans. Math. Softw. 37 (2010) 36 (pivot tolerance 1e-3).
"""

import math

import numba as nb
import numpy as np

MAX_N = 62
"""Largest system analysed (row and column patterns are bit sets in an int64)."""
PIVOT_TOL = 1e-3
"""A diagonal pivot is kept while ``|a_kk| >= PIVOT_TOL max_i |a_ik|`` below it (KLU)."""


@nb.njit(cache=True, error_model="numpy", inline="always")
def _offsets(n):
    """Start of perm, cp, cidx, ls, up, uidx, ut, us, pattern in ``sym``; its length."""
    m = n * (n - 1) // 2
    o_perm = 3
    o_cp = o_perm + n
    o_c = o_cp + n + 1
    o_ls = o_c + m
    o_up = o_ls + m
    o_u = o_up + n + 1
    o_ut = o_u + m
    o_us = o_ut + m
    o_pat = o_us + m
    return o_perm, o_cp, o_c, o_ls, o_up, o_u, o_ut, o_us, o_pat, o_pat + n


@nb.njit(cache=True, error_model="numpy")
def workspace(n):
    """Allocate ``(sym, vals)`` for an ``n``-state system (no usable analysis yet)."""
    sym = np.zeros(_offsets(n)[9], np.int64)
    vals = np.zeros(n + n * (n - 1))
    return sym, vals


@nb.njit(cache=True, error_model="numpy", inline="always")
def _popcount(m):
    c = 0
    while m != 0:
        m &= m - 1
        c += 1
    return c


@nb.njit(cache=True, error_model="numpy")
def analyse(jm, sym):
    """Pivot order and symbolic factors of ``I - c J`` from the non-zeros of ``jm``.

    Returns True when ``sym`` holds a usable analysis (``n <= MAX_N``). Skips the work
    when the pattern equals the one analysed last.
    """
    n = jm.shape[0]
    if n > MAX_N:
        sym[0] = 0
        return False
    o_perm, o_cp, o_c, o_ls, o_up, o_u, o_ut, o_us, o_pat, _ = _offsets(n)
    same = sym[0] == 1
    for i in range(n):
        m = np.int64(1) << i
        for j in range(n):
            if jm[i, j] != 0.0:
                m |= np.int64(1) << j
        if m != sym[o_pat + i]:
            same = False
            sym[o_pat + i] = m
    if same:
        return True
    rows = np.empty(n, np.int64)
    cols = np.zeros(n, np.int64)
    urow = np.zeros(n, np.int64)  # columns of U[k, :] by state k, as a bit set
    for i in range(n):
        m = sym[o_pat + i]
        rows[i] = m
        for j in range(n):
            if (m >> j) & 1:
                cols[j] |= np.int64(1) << i
    rem = (np.int64(1) << n) - 1
    nu = 0
    nc = 0
    sym[o_up] = 0
    sym[o_cp] = 0
    for s in range(n):
        best = -1
        best_mc = 0
        best_rc = 0
        for k in range(n):
            if not (rem >> k) & 1:
                continue
            r = _popcount(rows[k] & rem) - 1
            c = _popcount(cols[k] & rem) - 1
            mc = r * c
            if best < 0 or mc < best_mc or (mc == best_mc and r + c < best_rc):
                best = k
                best_mc = mc
                best_rc = r + c
        k = best
        rem &= ~(np.int64(1) << k)
        ru = rows[k] & rem  # columns of U[k, :]
        cl = cols[k] & rem  # rows of L[:, k]
        urow[k] = ru
        for i in range(n):
            if (cl >> i) & 1:
                rows[i] |= ru
                sym[o_c + nc] = i
                sym[o_ls + nc] = k
                nc += 1
            if (ru >> i) & 1:
                cols[i] |= cl
                sym[o_u + nu] = i
                nu += 1
        sym[o_perm + s] = k
        sym[o_up + s + 1] = nu
        sym[o_cp + s + 1] = nc
    # U by columns, last pivot first: the order of the backward substitution
    q = 0
    for s in range(n - 1, -1, -1):
        k = sym[o_perm + s]
        for s1 in range(s):
            i = sym[o_perm + s1]
            if (urow[i] >> k) & 1:
                sym[o_ut + q] = i
                sym[o_us + q] = k
                q += 1
    sym[1] = nc
    sym[2] = nu
    sym[0] = 1
    return True


@nb.njit(cache=True, error_model="numpy")
def factor(lu, sym, vals):
    """Factor ``A`` (dense in ``lu``, overwritten) in the order of ``sym``; True on success.

    On success the factors are in ``vals`` (see the module docstring). On False (no
    usable analysis, or a pivot that is not finite, is zero or fails the ``PIVOT_TOL``
    test) the caller must factor ``A`` otherwise.
    """
    if sym[0] != 1:
        return False
    n = lu.shape[0]
    o_perm, o_cp, o_c, o_ls, o_up, o_u, o_ut, o_us, o_pat, _ = _offsets(n)
    for s in range(n):
        k = sym[o_perm + s]
        d = lu[k, k]
        c0 = sym[o_cp + s]
        c1 = sym[o_cp + s + 1]
        cmax = 0.0
        for q in range(c0, c1):
            v = abs(lu[sym[o_c + q], k])
            if v > cmax:
                cmax = v
        if not (math.isfinite(d) and math.isfinite(cmax)) or d == 0.0 \
                or abs(d) < PIVOT_TOL * cmax:
            return False
        inv = 1.0 / d
        u0 = sym[o_up + s]
        u1 = sym[o_up + s + 1]
        for q in range(c0, c1):
            i = sym[o_c + q]
            lik = lu[i, k] * inv
            lu[i, k] = lik
            for r in range(u0, u1):
                j = sym[o_u + r]
                lu[i, j] -= lik * lu[k, j]
        vals[k] = inv
    nl = sym[1]
    for q in range(nl):
        vals[n + q] = lu[sym[o_c + q], sym[o_ls + q]]
    ov = n + nl
    for q in range(sym[2]):
        i = sym[o_ut + q]
        vals[ov + q] = lu[i, sym[o_us + q]] * vals[i]
    return True


@nb.njit(cache=True, error_model="numpy")
def solve(sym, vals, b):
    """Solve ``A x = b`` in place from the factors of a successful :func:`factor`.

    ``L`` by columns, then ``x = (D^{-1} U)^{-1} D^{-1} y`` by columns of the row-scaled
    ``U``: single loops over the non-zeros in the order of use, with no branch per row.
    """
    n = b.shape[0]
    o_perm, o_cp, o_c, o_ls, o_up, o_u, o_ut, o_us, o_pat, _ = _offsets(n)
    nl = sym[1]
    nu = sym[2]
    # views indexed from 0 compile to tighter loops than offsets into sym (2x in the A/B)
    lt = sym[o_c:o_c + nl]
    ls = sym[o_ls:o_ls + nl]
    lv = vals[n:n + nl]
    ut = sym[o_ut:o_ut + nu]
    us = sym[o_us:o_us + nu]
    uv = vals[n + nl:n + nl + nu]
    for q in range(nl):
        b[lt[q]] -= lv[q] * b[ls[q]]
    for i in range(n):
        b[i] *= vals[i]
    for q in range(nu):
        b[ut[q]] -= uv[q] * b[us[q]]
