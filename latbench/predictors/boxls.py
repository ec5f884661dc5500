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
    keep = ~np.all(lo >= hi, axis=0)  # unknowns held fixed in every problem leave the system
    if not keep.any():
        return x
    if keep.all():
        x, ok = _active_set(H, g, lo, hi)
    else:
        held = np.where(keep, 0.0, lo)
        g_k = (g - np.einsum("bij,bj->bi", H, held))[:, keep]
        x[:, keep], ok = _active_set(H[:, keep][:, :, keep], g_k, lo[:, keep], hi[:, keep])
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
    both = free[:, :, None] & free[:, None, :]
    M = np.where(both, H, 0.0) + (eye & ~free[:, :, None])
    held = np.where(free, 0.0, held_x)
    r = np.where(free, g - np.einsum("bij,bj->bi", H, held), held_x)
    return np.linalg.solve(M, r[:, :, None])[:, :, 0]


def _active_set(
    H: np.ndarray, g: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise x'Hx/2 - g'x over the box for every problem; (x, converged).

    First the primal-dual active-set method (Hintermueller, Ito and Kunisch 2003): guess the
    held sets from the last solution's violations and gradients until the guess repeats, which
    is the exact optimum (the KKT conditions hold), most problems in 2-4 steps; what has not
    settled within PDAS_ITER steps goes through Lawson-Hanson, whose steps always end."""
    B, p = g.shape
    d = np.sqrt(np.einsum("bii->bi", H))
    d = np.where(d > 0, d, 1.0)
    H = H / (d[:, :, None] * d[:, None, :])
    g = g / d
    lo, hi = lo * d, hi * d
    pinned = lo >= hi
    tol = _TOL * np.maximum(1.0, np.abs(g).max(axis=1))
    eye = np.eye(p, dtype=bool)
    x = np.where(np.isfinite(lo), lo, np.where(np.isfinite(hi), hi, 0.0))
    ok = np.ones(B, bool)
    at_lo, at_hi = pinned.copy(), np.zeros_like(pinned)
    live = np.ones(B, bool)
    # the unsettled problems' arrays, compacted as problems settle (views at first: no copy)
    idx = np.arange(B)
    Hs, gs, los, his, tols, pins = H, g, lo, hi, tol[:, None], pinned
    al, ah = at_lo, at_hi
    try:
        for _ in range(PDAS_ITER):
            if not len(idx):
                break
            free = ~(al | ah)
            z = _face(Hs, gs, np.where(al, los, his), free, eye)
            w = gs - np.einsum("bij,bj->bi", Hs, z)  # minus the gradient
            new_lo = pins | (free & (z < los)) | (al & (w <= tols))
            new_hi = ~new_lo & ((free & (z > his)) | (ah & (w >= -tols)))
            same = np.all(new_lo == al, axis=1) & np.all(new_hi == ah, axis=1)
            same &= np.all(np.isfinite(z), axis=1)
            x[idx[same]] = z[same]
            live[idx[same]] = False
            keep = ~same
            idx, Hs, gs, los, his = idx[keep], Hs[keep], gs[keep], los[keep], his[keep]
            tols, pins, al, ah = tols[keep], pins[keep], new_lo[keep], new_hi[keep]
    except np.linalg.LinAlgError:
        pass  # a singular system somewhere: Lawson-Hanson, then scipy, for what is left
    rest = np.flatnonzero(live)
    if len(rest):
        x[rest], ok[rest] = _lawson_hanson(H[rest], g[rest], lo[rest], hi[rest], tol[rest], eye)
    return x / d, ok


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
