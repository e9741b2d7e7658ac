"""Soft-DTW against a plain dynamic-programming computation (values and gradients)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from arctic_assist.training.softdtw import soft_dtw, soft_dtw_from_cost  # noqa: E402

torch.set_num_threads(1)


def _softmin(a: np.ndarray, gamma: float) -> float:
    z = -a / gamma
    zmax = z.max()
    return float(-gamma * (zmax + np.log(np.exp(z - zmax).sum())))


def dp_forward(cost: np.ndarray, gamma: float) -> tuple[float, np.ndarray]:
    """Textbook recursion with +inf borders (Cuturi & Blondel 2017, algorithm 1)."""
    n, m = cost.shape
    r = np.full((n + 2, m + 2), np.inf)
    r[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            r[i, j] = cost[i - 1, j - 1] + _softmin(
                np.array([r[i - 1, j - 1], r[i - 1, j], r[i, j - 1]]), gamma
            )
    return float(r[n, m]), r


def dp_grad(cost: np.ndarray, gamma: float) -> np.ndarray:
    """Gradient of Soft-DTW w.r.t. the cost matrix (algorithm 2: the E matrix)."""
    n, m = cost.shape
    _, r = dp_forward(cost, gamma)
    dd = np.zeros((n + 2, m + 2))
    dd[1 : n + 1, 1 : m + 1] = cost
    e = np.zeros((n + 2, m + 2))
    e[n + 1, m + 1] = 1.0
    r[:, m + 1] = -np.inf
    r[n + 1, :] = -np.inf
    r[n + 1, m + 1] = r[n, m]
    for j in range(m, 0, -1):
        for i in range(n, 0, -1):
            a = np.exp((r[i + 1, j] - r[i, j] - dd[i + 1, j]) / gamma)
            b = np.exp((r[i, j + 1] - r[i, j] - dd[i, j + 1]) / gamma)
            c = np.exp((r[i + 1, j + 1] - r[i, j] - dd[i + 1, j + 1]) / gamma)
            e[i, j] = e[i + 1, j] * a + e[i, j + 1] * b + e[i + 1, j + 1] * c
    return e[1 : n + 1, 1 : m + 1]


@pytest.mark.parametrize("gamma", [0.001, 0.1, 1.0])
@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (6, 4), (7, 7)])
def test_value_matches_dp(gamma, shape):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, shape[0], 2))
    y = rng.normal(size=(2, shape[1], 2))
    got = soft_dtw(torch.tensor(x), torch.tensor(y), gamma).numpy()
    for b in range(2):
        cost = ((x[b][:, None] - y[b][None]) ** 2).sum(-1)
        ref, _ = dp_forward(cost, gamma)
        assert got[b] == pytest.approx(ref, rel=1e-9, abs=1e-9)


def test_hard_limit_is_dtw():
    """gamma -> 0 gives classic DTW."""
    rng = np.random.default_rng(1)
    cost = rng.uniform(size=(5, 6))
    n, m = cost.shape
    r = np.full((n + 1, m + 1), np.inf)
    r[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            r[i, j] = cost[i - 1, j - 1] + min(r[i - 1, j - 1], r[i - 1, j], r[i, j - 1])
    got = soft_dtw_from_cost(torch.tensor(cost)[None], 1e-5).item()
    assert got == pytest.approx(r[n, m], abs=1e-3)


@pytest.mark.parametrize("gamma", [0.01, 0.5])
def test_cost_gradient_matches_dp(gamma):
    rng = np.random.default_rng(2)
    cost = rng.uniform(0, 1, size=(5, 7))
    c = torch.tensor(cost, requires_grad=True)
    soft_dtw_from_cost(c[None], gamma).sum().backward()
    np.testing.assert_allclose(c.grad.numpy(), dp_grad(cost, gamma), rtol=1e-7, atol=1e-9)


def test_gradcheck_points():
    """Gradients w.r.t. the vertices agree with finite differences (float64)."""
    rng = np.random.default_rng(3)
    x = torch.tensor(rng.normal(size=(2, 5, 2)), requires_grad=True)
    y = torch.tensor(rng.normal(size=(2, 4, 2)), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: soft_dtw(a, b, 0.1), (x, y), eps=1e-6, atol=1e-5)


def test_gamma_0001_gradients_finite_float32():
    rng = np.random.default_rng(4)
    x = torch.tensor(rng.uniform(-1, 1, size=(3, 64, 2)), dtype=torch.float32, requires_grad=True)
    y = torch.tensor(rng.uniform(-1, 1, size=(3, 64, 2)), dtype=torch.float32)
    loss = soft_dtw(x, y, 0.001).mean()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()
    # identical polylines: soft-DTW ~ 0 (only the -gamma log term), gradient ~ 0
    z = y.clone().requires_grad_(True)
    v = soft_dtw(z, y, 0.001)
    assert (v.abs() < 0.01).all()
