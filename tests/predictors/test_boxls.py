"""The batched bounded least-squares solver (predictors/boxls.py) and the fits built on it.

The fits of `scaled` and `stagewise` once called scipy (lsq_linear, nnls) problem by problem;
they now solve every problem of a fit at once. These tests put scipy back in place of the
batched solver, one problem at a time as before, and check that every fitted number, every
chosen strength and the judged default come out the same.
"""

import random

import numpy as np
import pytest
from scipy.optimize import lsq_linear, nnls

import latbench.predictors.scaled as scaled_mod
import latbench.predictors.stagewise as stagewise_mod
from latbench.calibration.calibrate import judge_predictors, make_predictors
from latbench.predictors import FEATURES, HW_BUCKETS, LayerTable, SpaceTable
from latbench.predictors.boxls import _scipy_one, box_lstsq, box_qp, box_ridge


def _scipy(A, b, lo, hi):
    """One problem as the predictors solved it before: scipy, fixed unknowns left out."""
    x = lo.copy()
    free = lo < hi
    rhs = b - A[:, ~free] @ lo[~free]
    if not free.any():
        return x
    if np.all(np.isinf(hi[free])):  # stagewise's nnls on shifted unknowns
        x[free] = lo[free] + nnls(A[:, free], rhs - A[:, free] @ lo[free], maxiter=10000)[0]
    else:  # scaled's lsq_linear (its default method, "trf", as before)
        x[free] = lsq_linear(A[:, free], rhs, bounds=(lo[free], hi[free]), tol=1e-14).x
    return x


def _scipy_qp(H, g, lo, hi):
    """The same, from normal equations (a square root of H as the matrix)."""
    out = []
    for Hi, gi, li, hi_ in zip(H, g, np.broadcast_to(lo, g.shape), np.broadcast_to(hi, g.shape)):
        e, V = np.linalg.eigh(Hi)
        e = np.where(e > e.max() * 1e-14, e, 0.0)
        root = np.sqrt(e)
        A = root[:, None] * V.T  # square: A'A = H
        b = np.divide(V.T @ gi, root, out=np.zeros_like(gi), where=root > 0)
        out.append(_scipy(A, b, li.copy(), hi_.copy()))
    return np.array(out)


def _ridge_qp(A, b, pen, prior, lo, hi, start=None, solve=box_qp):
    """box_ridge's problems through their normal equations, solved by `solve`."""
    F, L, p = pen.shape
    H = np.repeat(np.einsum("fni,fnj->fij", A, A), L, axis=0)
    H[:, np.eye(p, dtype=bool)] += pen.reshape(-1, p)
    g = np.repeat(A.transpose(0, 2, 1) @ b[:, :, None], L, axis=0)[:, :, 0]
    g = g + (pen * prior[:, None]).reshape(-1, p)
    lo, hi = (np.broadcast_to(v, pen.shape).reshape(-1, p) for v in (lo, hi))
    return solve(H, g, lo, hi).reshape(F, L, p)


def _scipy_ridge(*args):
    return _ridge_qp(*args, solve=_scipy_qp)


def _scipy_lstsq(A, b, lo, hi):
    lo, hi = np.broadcast_to(lo, b.shape[:1] + A.shape[2:]), np.broadcast_to(hi, lo.shape)
    return np.array([_scipy(a, r, li.copy(), h.copy()) for a, r, li, h in zip(A, b, lo, hi)])


def test_random_problems_match_scipy_bvls_to_rounding():
    rng = np.random.default_rng(0)
    B, m, p = 300, 12, 8
    A = rng.standard_normal((B, m, p))
    b = rng.standard_normal((B, m))
    lo = rng.uniform(-0.3, 0.0, (B, p))
    hi = lo + rng.uniform(0.05, 0.5, (B, p))
    hi[:, :2] = np.inf  # one-sided
    lo[:, 2] = -np.inf
    lo[:, 3] = hi[:, 3] = 0.1  # held fixed
    A[:7, :, 4] = 0.0  # an unknown no row uses, with a finite box: any point of it is optimal
    x = box_lstsq(A, b, lo, hi)
    for i in range(B):
        f = lo[i] < hi[i]
        ref = lsq_linear(
            A[i][:, f], b[i] - A[i][:, ~f] @ lo[i][~f], bounds=(lo[i][f], hi[i][f]), method="bvls"
        ).x
        r_new = A[i] @ x[i] - b[i]
        r_ref = A[i][:, f] @ ref + A[i][:, ~f] @ lo[i][~f] - b[i]
        assert np.all((x[i] >= lo[i]) & (x[i] <= hi[i]))
        assert abs(r_new @ r_new - r_ref @ r_ref) <= 1e-12 * max(1.0, r_ref @ r_ref)
        if i >= 7:  # unique optimum
            assert np.allclose(x[i][f], ref, rtol=0, atol=1e-10)
        assert np.all(x[i][~f] == lo[i][~f])


def test_a_singular_stack_falls_back_to_scipy_and_all_held_is_the_bound():
    A = np.zeros((2, 3, 2))
    A[:, :, 0] = 1.0  # second unknown unused and unbounded above: singular free system
    b = np.ones((2, 3))
    x = box_lstsq(A, b, np.array([0.0, 0.0]), np.array([np.inf, np.inf]))
    assert np.allclose(x[:, 0], 1.0)
    assert np.allclose(_scipy_one(np.eye(1), np.ones(1), np.zeros(1), np.ones(1)), 1.0)
    assert np.array_equal(
        box_qp(np.eye(2)[None], np.ones((1, 2)), [0.5, 2.0], [0.5, 2.0]), [[0.5, 2.0]]
    )


def test_row_space_ridge_fits_equal_the_normal_equations_warm_or_cold():
    """box_ridge (the stagewise fits: n x n systems, a guess to start from) against box_qp on
    the same problems: held unknowns, unused columns, zero rows, an unpenalised unknown (the
    normal-equation path) and more rows than unknowns."""
    rng = np.random.default_rng(1)
    for F, n, p in ((6, 7, 12), (3, 15, 6)):
        L = 9
        A = rng.standard_normal((F, n, p))
        A[:, -2:] = 0.0  # rows outside the fold
        A[0, :, 3] = 0.0  # a column no row uses (penalised: the prior decides it)
        b = np.where(np.arange(n) < n - 2, 1.0, 0.0) * np.ones((F, 1))
        prior = rng.uniform(0.5, 1.5, (F, p))
        pen = 10.0 ** rng.uniform(-5, 1, (F, L, p))
        lo = np.broadcast_to(prior[:, None] - rng.uniform(0.0, 0.3, p), (F, L, p)).copy()
        hi = np.full((F, L, p), np.inf)
        hi[:, :, 1] = prior[:, None, 1] + 0.05
        lo[:, 2, :4] = hi[:, 2, :4] = prior[:, :4]  # held at the prior
        lo[:, 3] = hi[:, 3] = prior  # all held
        pen[1, 4, 5] = 0.0  # free and unpenalised
        ref = _ridge_qp(A, b, pen, prior, lo, hi)
        cold = box_ridge(A, b, pen, prior, lo, hi)
        scale = np.abs(ref).max()
        assert np.allclose(cold, ref, rtol=0, atol=1e-9 * scale)
        for start in (ref, np.roll(ref, 1, axis=1), rng.uniform(-2, 3, ref.shape)):
            warm = box_ridge(A, b, pen, prior, lo, hi, start)
            assert np.allclose(warm, ref, rtol=0, atol=1e-9 * scale)
        assert np.all((cold >= lo) & (cold <= hi))


@pytest.fixture(scope="module")
def nets():
    """Features of 60 fbnet-cifar100 networks on a LUT with 15 % per-layer scatter, and a
    target 1.8x slower with per-stage differences, a per-network cost and 2 % noise."""
    from latbench.devices.measure import summarize
    from latbench.nets.spaces import get_space
    from latbench.profiling.lut import LUT, Row

    sp = get_space("fbnet-cifar100")
    lut = LUT(meta={"fingerprint": {"device": "host"}, "converter": "c", "precision": "fp32"})
    rng = np.random.default_rng(0)
    for s in sp.enumerate_specs():
        ms = (0.004 + s.macs() / 3e8) * rng.lognormal(0, 0.15)
        lut.rows[s.key] = Row(s, "ok", summarize([ms]))
    r = random.Random(3)
    X = SpaceTable(sp, LayerTable(lut, "host", "fp32")).features(
        np.array([sp.sample(r) for _ in range(60)])
    )
    ratio = dict(zip(HW_BUCKETS, rng.uniform(0.7, 1.3, len(HW_BUCKETS))))
    y = sum(ratio[b] * X[:, FEATURES.index(f"lut_ms_hw{b}")] for b in HW_BUCKETS) * 1.8 + 0.2
    return X, y * rng.lognormal(0, 0.02, len(y))


@pytest.mark.parametrize("n", [5, 9, 10, 25])
def test_fitted_parameters_equal_the_per_problem_scipy_solver(nets, n, monkeypatch):
    X, y = nets[0][:n], nets[1][:n]
    new = {k: p.fit(X, y) for k, p in make_predictors().items()}
    judged = judge_predictors(X, y)
    monkeypatch.setattr(scaled_mod, "box_qp", _scipy_qp)
    monkeypatch.setattr(scaled_mod, "box_lstsq", _scipy_lstsq)
    monkeypatch.setattr(stagewise_mod, "box_ridge", _scipy_ridge)
    old = {k: p.fit(X, y) for k, p in make_predictors().items()}
    for k in ("scaled", "stagewise"):
        assert new[k].ridge_ == old[k].ridge_, k
        scale = np.abs(old[k].coef_).max()
        assert np.allclose(new[k].coef_, old[k].coef_, rtol=0, atol=1e-6 * scale), k
        assert np.allclose(new[k].predict(nets[0]), old[k].predict(nets[0]), rtol=1e-6)
    assert new["scaled"].fallback_ == old["scaled"].fallback_
    old_judged = judge_predictors(X, y)
    assert judged["default"] == old_judged["default"]
    for k, v in judged["mape"].items():
        assert v == pytest.approx(old_judged["mape"][k], abs=1e-3), k


@pytest.mark.parametrize("name", ["scaled", "stagewise", "regression"])
def test_fit_many_equals_one_fit_per_mask(nets, name):
    X, y = nets[0][:12], nets[1][:12]
    masks = np.stack([np.arange(12) % 4 != f for f in range(4)] + [np.arange(12) < 6])
    many = make_predictors()[name].fit_many(X, y, masks)
    for m, p in zip(masks, many):
        one = make_predictors()[name].fit(X[m], y[m])
        # the same problems, solved within other stacks: equal up to rounding
        assert np.allclose(p.predict(nets[0]), one.predict(nets[0]), rtol=1e-9)
        a, b = p.to_dict(), one.to_dict()
        ca, cb = a.pop("coef"), b.pop("coef")
        ca, cb = (list(c.values()) if isinstance(c, dict) else c for c in (ca, cb))
        assert np.allclose(ca, cb, rtol=1e-9)
        assert a == b
