"""Soft-DTW (Cuturi & Blondel 2017) between batches of polylines, written for COBRA.

``R[i, j] = D[i, j] + softmin_gamma(R[i-1, j-1], R[i-1, j], R[i, j-1])`` with
``softmin_gamma(a) = -gamma * log(sum(exp(-a / gamma)))`` and ``D`` the squared Euclidean
distance between vertex ``i`` of the prediction and vertex ``j`` of the target. The
recursion runs over anti-diagonals (every cell of one anti-diagonal depends only on the two
before it), so a 64 x 64 problem is 127 small vectorised steps; gradients come from
autograd. Large finite values stand in for +inf so that no NaN appears in the backward pass.
"""

from __future__ import annotations

import torch

_BIG = 1e10


def pairwise_sq_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(B, N, D), (B, M, D) -> (B, N, M)`` squared Euclidean distances (exact form)."""
    return ((x[:, :, None, :] - y[:, None, :, :]) ** 2).sum(-1)


def soft_dtw_from_cost(cost: torch.Tensor, gamma: float = 0.001) -> torch.Tensor:
    """Soft-DTW value ``R[N, M]`` for a batch of cost matrices ``(B, N, M)`` -> ``(B,)``."""
    if cost.dim() != 3:
        raise ValueError("cost must be (B, N, M)")
    if gamma <= 0:
        raise ValueError("gamma must be positive")
    bsz, n, m = cost.shape
    dev, dt = cost.device, cost.dtype
    big = torch.tensor(_BIG, device=dev, dtype=dt)
    # skewed cost: for anti-diagonal d = i + j (1-based i, j) and row i, cost[i-1, d-i-1]
    i_idx = torch.arange(1, n + 1, device=dev)
    # diagonal vectors hold R[i, d - i] for i = 0..n
    diag_prev2 = torch.full((bsz, n + 1), _BIG, device=dev, dtype=dt)
    diag_prev2[:, 0] = 0.0  # d = 0: R[0, 0] = 0
    diag_prev1 = torch.full((bsz, n + 1), _BIG, device=dev, dtype=dt)  # d = 1: all inf
    head = big.expand(bsz, 1)
    for d in range(2, n + m + 1):
        j_idx = d - i_idx  # 1-based column for each row
        valid = (j_idx >= 1) & (j_idx <= m)
        jc = (j_idx - 1).clamp(0, m - 1)
        dcost = cost[:, i_idx - 1, jc]  # (B, n)
        dcost = torch.where(valid, dcost, big)
        r_diag = diag_prev2[:, :-1]  # R[i-1, j-1]
        r_up = diag_prev1[:, :-1]  # R[i-1, j]
        r_left = diag_prev1[:, 1:]  # R[i, j-1]
        stacked = torch.stack([r_diag, r_up, r_left], dim=-1)
        softmin = -gamma * torch.logsumexp(-stacked / gamma, dim=-1)
        new = torch.where(valid, dcost + softmin, big)
        diag_prev2, diag_prev1 = diag_prev1, torch.cat([head, new], dim=1)
    return diag_prev1[:, n]


def soft_dtw(x: torch.Tensor, y: torch.Tensor, gamma: float = 0.001) -> torch.Tensor:
    """Soft-DTW with squared distance between polylines ``(B, N, D)`` and ``(B, M, D)``."""
    return soft_dtw_from_cost(pairwise_sq_dist(x, y), gamma)
