"""Exact bounded least squares for a stack of small problems at once: the calibrated fits' solver.

    minimise ||A_i x - b_i||^2  subject to  lo_i <= x <= hi_i,   i = 1..B

`scaled` and `stagewise` fit a few networks by such problems, hundreds of them per fit
(every fold of their leave-one-out choice of penalty strength, every strength of a grid).
Solved one by one with scipy (lsq_linear, nnls) that cost a second per `Predictor.fit`, almost
all of it per-call overhead on problems of at most ~20 unknowns. Here all B problems run
through one active-set method together in numpy:

Lawson and Hanson's NNLS (Solving Least Squares Problems, 1974, ch. 23) with upper bounds as in
Stark and Parker's BVLS (1995): each problem keeps a feasible point and the set of unknowns
held at a bound; the others are solved for exactly (their normal equations, columns scaled to
unit norm); a step that would leave the box stops at the first bound hit, which joins the
held set; at a feasible solution the held unknown whose gradient most wants to leave its bound
is freed, until none does (the Karush-Kuhn-Tucker conditions: the exact optimum). Unknowns
with lo == hi are held throughout. Zero rows (padding) change nothing, so problems with fewer
rows are padded to the stack's. A problem not finished after MAX_ITER steps, or with a
singular free system, is solved alone by scipy.optimize.lsq_linear (method "bvls"), so every
answer is the exact optimum either way; tests/predictors/test_boxls.py checks both against
scipy on random and real calibration problems.

`stagewise`'s problems are ridge fits toward a prior with every free unknown penalised,
||A x - b||^2 + sum_j pen_j (x_j - prior_j)^2, on fewer rows (networks) than unknowns, 49
penalties per data set: `box_ridge` runs the same active-set steps on them in the space of
the rows (an n x n system per step instead of p x p, A shared by a data set's penalties),
and takes a guess of the solutions (a neighbouring penalty's) to choose the first held set,
which saves steps, never changes the optimum. box_qp groups its problems by the unknowns
they hold fixed and solves each group's smaller system.
"""

from __future__ import annotations

import numpy as np

PDAS_ITER = 12
MAX_ITER = 200
_TOL = 1e-11  # gradient tolerance, relative to the scaled problem's right-hand side


def box_lstsq(A: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(B, p) minimisers of ||A x - b|| over lo <= x <= hi; A (B, m, p), b (B, m), lo/hi (B, p)
    (or (p,), broadcast); lo may be -inf and hi inf, lo == hi holds an unknown fixed."""
    A = np.asarray(A, float)
    b = np.asarray(b, float)
    return box_qp(np.einsum("bmi,bmj->bij", A, A), np.einsum("bmi,bm->bi", A, b), lo, hi)


def box_qp(H: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The same problems given by their normal equations: minimise x'Hx/2 - g'x over the box,
    H = A'A (B, p, p) positive semi-definite, g = A'b (B, p)."""
    H = np.asarray(H, float)
    g = np.asarray(g, float)
    B, p = g.shape
    lo = np.broadcast_to(np.asarray(lo, float), (B, p)).copy()
    hi = np.broadcast_to(np.asarray(hi, float), (B, p)).copy()
    x = lo.copy()
    ok = np.ones(B, bool)
    # problems grouped by the unknowns they hold fixed, which leave each group's system
    pinned = lo >= hi
    code = np.packbits(pinned, axis=1)
    patterns, first, group = np.unique(
        np.ascontiguousarray(code).view(f"V{code.shape[1]}").ravel(),
        return_index=True,
        return_inverse=True,
    )
    for k, i0 in enumerate(first):
        keep = ~pinned[i0]
        if not keep.any():
            continue
        rows = np.flatnonzero(group.ravel() == k) if len(first) > 1 else slice(None)
        Hr, gr, lr, hr = H[rows], g[rows], lo[rows], hi[rows]
        if not keep.all():
            gr = (gr - np.einsum("bij,bj->bi", Hr[:, :, ~keep], lr[:, ~keep]))[:, keep]
            Hr = Hr[:, keep][:, :, keep]
        xr, ok[rows] = _active_set(Hr, gr, lr[:, keep], hr[:, keep])
        if keep.all():
            x[rows] = xr
        else:
            x[np.ix_(np.arange(B)[rows], np.flatnonzero(keep))] = xr
    for i in np.flatnonzero(~ok):
        x[i] = _scipy_one(H[i], g[i], lo[i], hi[i])
    return np.clip(x, lo, hi)  # a bound undone by the column scaling's rounding


def _scipy_one(H: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """One problem by scipy's BVLS, on a square root of its normal equations."""
    from scipy.optimize import lsq_linear

    e, V = np.linalg.eigh(H)
    pos = e > e.max() * 1e-14
    A = np.sqrt(e[pos])[:, None] * V[:, pos].T
    b = (V[:, pos].T @ g) / np.sqrt(e[pos])
    x = lo.copy()
    free = lo < hi
    if free.any():
        rhs = b - A[:, ~free] @ lo[~free]
        x[free] = lsq_linear(A[:, free], rhs, bounds=(lo[free], hi[free]), method="bvls").x
    return x


def _face(H, g, held_x, free, eye) -> np.ndarray:
    """The minimiser with the held unknowns at `held_x` and the free ones solved for."""
    held = np.where(free, 0.0, held_x)
    r = np.where(free, g - np.einsum("bij,bj->bi", H, held), held_x)
    if free.all():
        return np.linalg.solve(H, r[:, :, None])[:, :, 0]
    M = H * (free[:, :, None] & free[:, None, :])
    M[:, eye] = np.where(free, M[:, eye], 1.0)
    return np.linalg.solve(M, r[:, :, None])[:, :, 0]


def _active_set(
    H: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise x'Hx/2 - g'x over the box for every problem; (x, converged): `_pdas` on the
    problems with columns scaled to unit norm, Lawson-Hanson for what it leaves."""
    d = np.sqrt(np.einsum("bii->bi", H))
    d = np.where(d > 0, d, 1.0)
    H = H / (d[:, :, None] * d[:, None, :])
    g = g / d
    lo, hi = lo * d, hi * d
    tol = _TOL * np.maximum(1.0, np.abs(g).max(axis=1))
    eye = np.eye(g.shape[1], dtype=bool)

    def face(Hs, gs, held_x, free):
        return _face(Hs, gs, held_x, free, eye)

    def grad(Hs, gs, z):  # minus the gradient
        return gs - np.einsum("bij,bj->bi", Hs, z)

    x, live = _pdas((H, g), lo, hi, tol, face, grad, None)
    ok = np.ones(len(g), bool)
    rest = np.flatnonzero(live)
    if len(rest):
        x[rest], ok[rest] = _lawson_hanson(H[rest], g[rest], lo[rest], hi[rest], tol[rest], eye)
    return x / d, ok


def _pdas(data, lo, hi, tol, face, grad, start) -> tuple[np.ndarray, np.ndarray]:
    """The primal-dual active-set method (Hintermueller, Ito and Kunisch 2003) on a stack of
    problems held in `data` (arrays, problems first; `face(*data, held_x, free)` the minimiser
    with the held unknowns at held_x, `grad(*data, z)` minus the gradient at z): guess the
    held sets from the last solution's violations and gradients until the guess repeats,
    which is the exact optimum (the KKT conditions hold), most problems in 2-4 steps. The
    first guess holds what `start` puts on or beyond a bound (nothing without it).
    (x, unsettled): what has not settled within PDAS_ITER steps is left to Lawson-Hanson."""
    B, p = lo.shape
    pinned = lo >= hi
    x = np.where(np.isfinite(lo), lo, np.where(np.isfinite(hi), hi, 0.0))
    al, ah = pinned.copy(), np.zeros_like(pinned)
    if start is not None:
        al |= start <= lo
        ah = ~al & (start >= hi)
    live = np.ones(B, bool)
    # the unsettled problems' arrays, compacted as problems settle (views at first: no copy)
    idx = np.arange(B)
    los, his, tols, pins = lo, hi, tol[:, None], pinned
    try:
        for _ in range(PDAS_ITER):
            if not len(idx):
                break
            free = ~(al | ah)
            z = face(*data, np.where(al, los, his), free)
            w = grad(*data, z)
            new_lo = pins | (free & (z < los)) | (al & (w <= tols))
            new_hi = ~new_lo & ((free & (z > his)) | (ah & (w >= -tols)))
            same = np.all(new_lo == al, axis=1) & np.all(new_hi == ah, axis=1)
            same &= np.all(np.isfinite(z), axis=1)
            x[idx[same]] = z[same]
            live[idx[same]] = False
            if same.all():
                break
            keep = ~same
            idx, los, his, tols = idx[keep], los[keep], his[keep], tols[keep]
            pins, al, ah = pins[keep], new_lo[keep], new_hi[keep]
            data = tuple(a[keep] for a in data)
    except np.linalg.LinAlgError:
        pass  # a singular system somewhere: Lawson-Hanson, then scipy, for what is left
    return x, live


def box_ridge(
    A: np.ndarray,
    b: np.ndarray,
    pen: np.ndarray,
    prior: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    start: np.ndarray | None = None,
) -> np.ndarray:
    """Minimisers of ||A x - b||^2 + sum_j pen_j (x_j - prior_j)^2 over lo <= x <= hi, for
    F data sets (A (F, n, p), b (F, n), prior (F, p)) and L penalties each (pen, lo, hi
    (F, L, p)); (F, L, p). The same exact optimum as box_qp on the normal equations
    (H = A'A + diag(pen), g = A'b + pen * prior), found in the space of the n rows rather
    than the p unknowns where every free unknown is penalised: the free unknowns are
    prior + P^-1 A' (I + A P^-1 A')^-1 (b - A x~) (x~: the prior, the held unknowns at
    their bound), an n x n system per problem, and A is shared by a data set's L problems.
    Problems with a free unpenalised unknown, or with no fewer rows than unknowns, go
    through box_qp."""
    A, b = np.asarray(A, float), np.asarray(b, float)
    prior = np.asarray(prior, float)
    # rows of zeros (networks outside a fold) change nothing: each data set's others first
    used = np.any(A != 0, axis=2) | (b != 0)
    nf = max(int(used.sum(axis=1).max()), 1)
    order = np.argsort(~used, axis=1, kind="stable")[:, :nf]
    keep = np.take_along_axis(used, order, axis=1)
    A = np.take_along_axis(A, order[:, :, None], axis=1) * keep[:, :, None]
    b = np.take_along_axis(b, order, axis=1) * keep
    F, L, p = np.shape(pen)
    pen = np.asarray(pen, float).reshape(F * L, p)
    lo = np.broadcast_to(np.asarray(lo, float), (F, L, p)).reshape(F * L, p)
    hi = np.broadcast_to(np.asarray(hi, float), (F, L, p)).reshape(F * L, p)
    which = np.repeat(np.arange(F), L)
    st = None if start is None else np.asarray(start, float).reshape(F * L, p)
    x = lo.copy()
    fit = np.all((pen > 0) & np.isfinite(pen) | (lo >= hi), axis=1) & (nf < p)
    some = ~np.all(lo >= hi, axis=1)
    go = np.flatnonzero(fit & some)
    if len(go):
        x[go] = _ridge_set(A, b, pen, prior, lo, hi, which, go, st)
    other = np.flatnonzero(~fit & some)
    if len(other):
        x[other] = box_qp(*_ridge_normal(A, b, pen, prior, which, other), lo[other], hi[other])
    return np.clip(x, lo, hi).reshape(F, L, p)


def _ridge_normal(A, b, pen, prior, which, rows) -> tuple[np.ndarray, np.ndarray]:
    """(H, g) of the problems `rows` of box_ridge."""
    f = which[rows]
    H = np.einsum("fni,fnj->fij", A, A)[f]
    H[:, np.eye(H.shape[1], dtype=bool)] += pen[rows]
    g = np.einsum("fni,fn->fi", A, b)[f] + pen[rows] * prior[f]
    return H, g


def _ridge_set(A, b, pen, prior, lo, hi, which, rows, start) -> np.ndarray:
    """box_ridge's problems `rows` (every free unknown penalised): _pdas in the row space,
    columns scaled to unit norm as _active_set does; box_qp for what it leaves."""
    f = which[rows]
    An = A[f]
    d = np.sqrt(np.einsum("fni,fni->fi", A, A)[f] + pen[rows])
    d = np.where(d > 0, d, 1.0)
    As = An / d[:, None, :]
    Ps, Ms = pen[rows] / d**2, prior[f] * d
    bs = b[f]
    lo_s, hi_s = lo[rows] * d, hi[rows] * d
    gs = np.einsum("bni,bn->bi", As, bs) + Ps * Ms
    tol = _TOL * np.maximum(1.0, np.abs(gs).max(axis=1))
    n = A.shape[1]

    def face(As, bs, Ps, Ms, held_x, free):
        xt = np.where(free, Ms, held_x)
        e = bs - np.einsum("bni,bi->bn", As, xt)
        Q = As * np.where(free, 1.0 / np.where(free, Ps, 1.0), 0.0)[:, None, :]  # A_F P^-1
        K = Q @ As.transpose(0, 2, 1)
        K.reshape(len(K), -1)[:, :: n + 1] += 1.0
        return xt + (Q.transpose(0, 2, 1) @ np.linalg.solve(K, e[:, :, None]))[:, :, 0]

    def grad(As, bs, Ps, Ms, z):  # minus the gradient
        r = bs - np.einsum("bni,bi->bn", As, z)
        return np.einsum("bni,bn->bi", As, r) + Ps * (Ms - z)

    x, live = _pdas(
        (As, bs, Ps, Ms), lo_s, hi_s, tol, face, grad, None if start is None else start[rows] * d
    )
    x = x / d
    rest = np.flatnonzero(live)
    if len(rest):
        H, g = _ridge_normal(A, b, pen, prior, which, rows[rest])
        x[rest] = box_qp(H, g, lo[rows[rest]], hi[rows[rest]])
    return x


def _lawson_hanson(H, g, lo, hi, tol, eye) -> tuple[np.ndarray, np.ndarray]:
    B, p = g.shape
    pinned = lo >= hi
    x = np.where(np.isfinite(lo), lo, np.where(np.isfinite(hi), hi, 0.0))
    at_lo = pinned.copy()
    at_hi = np.zeros_like(pinned)
    live = np.ones(B, bool)
    ok = np.ones(B, bool)
    for _ in range(MAX_ITER):
        idx = np.flatnonzero(live)
        if not len(idx):
            break
        Hs, gs, xs = H[idx], g[idx], x[idx]
        free = ~(at_lo[idx] | at_hi[idx])
        try:
            z = _face(Hs, gs, xs, free, eye)
        except np.linalg.LinAlgError:
            ok[idx] = False  # a singular free system somewhere in the stack: scipy, one by one
            live[idx] = False
            break
        if not np.all(np.isfinite(z)):
            bad = ~np.all(np.isfinite(z), axis=1)
            ok[idx[bad]] = False
            live[idx[bad]] = False
            idx, z, xs, free = idx[~bad], z[~bad], xs[~bad], free[~bad]
            Hs, gs = Hs[~bad], gs[~bad]
        los, his = lo[idx], hi[idx]
        below = free & (z < los)
        above = free & (z > his)
        out = np.any(below | above, axis=1)
        # inside the box: accept, then free the held unknown that most wants to move
        ins = np.flatnonzero(~out)
        if len(ins):
            i = idx[ins]
            x[i] = z[ins]
            w = gs[ins] - np.einsum("bij,bj->bi", Hs[ins], z[ins])  # minus the gradient
            want = np.where(at_lo[i] & ~pinned[i], w, 0.0) + np.where(at_hi[i], -w, 0.0)
            j = np.argmax(want, axis=1)
            go = want[np.arange(len(i)), j] > tol[i]
            live[i[~go]] = False
            at_lo[i[go], j[go]] = False
            at_hi[i[go], j[go]] = False
        # outside: step from x toward z up to the first bound, hold what reached one
        outs = np.flatnonzero(out)
        if len(outs):
            i = idx[outs]
            xo, zo, lo_o, hi_o = xs[outs], z[outs], los[outs], his[outs]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.where(below[outs], (xo - lo_o) / (xo - zo), np.inf)
                t = np.minimum(t, np.where(above[outs], (hi_o - xo) / (zo - xo), np.inf))
            t = np.clip(t, 0.0, 1.0)
            alpha = t.min(axis=1, keepdims=True)
            xn = xo + alpha * (zo - xo)
            f = free[outs]
            hit_lo = f & (below[outs] & (t <= alpha) | (xn <= lo_o))
            hit_hi = f & (above[outs] & (t <= alpha) | (xn >= hi_o))
            xn = np.where(hit_lo, lo_o, np.where(hit_hi, hi_o, xn))
            x[i] = xn
            at_lo[i] |= hit_lo
            at_hi[i] |= hit_hi & ~hit_lo
    ok &= ~live  # still running after MAX_ITER steps: scipy
    return x, ok
