"""Ranking objectives over timestamp groups (contract 1.4), for the torch families, and the group layout they use.

Scores and labels come as padded ``[groups, n]`` tensors with a ``mask`` of real entries (a timestamp's symbols).
Only the order of scores within one group matters to these losses, so a ranking model's scores mean something only
within one timestamp.

* ``pairwise_logistic``: the mean over every pair ``(i, j)`` of one group with ``y_i > y_j`` of
  ``log(1 + exp(-(s_i - s_j)))`` (RankNet).
* ``listwise_softmax``: ``-sum_i p_i log softmax(s)_i`` per group, averaged over groups (ListNet), with ``p`` the
  softmax of the labels z-scored within the group and divided by ``temperature``.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from contracts.families import RANKING_LOSSES


def group_index(groups: np.ndarray) -> np.ndarray:
    """``[n_groups, max_size]`` row indices of each group (rows in their order; -1 pads), groups in sorted order."""
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    _, starts, sizes = np.unique(groups[order], return_index=True, return_counts=True)
    out = np.full((len(sizes), int(sizes.max()) if len(sizes) else 0), -1, dtype=np.int64)
    for g, (s, k) in enumerate(zip(starts, sizes, strict=True)):
        out[g, :k] = order[s : s + k]
    return out


def _zscore(labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    n = mask.sum(dim=1, keepdim=True).clamp(min=1)
    x = torch.where(mask, labels, torch.zeros_like(labels))
    mean = x.sum(dim=1, keepdim=True) / n
    var = (torch.where(mask, labels - mean, torch.zeros_like(labels)) ** 2).sum(dim=1, keepdim=True) / n
    return torch.where(mask, (labels - mean) / var.sqrt().clamp(min=1e-12), torch.zeros_like(labels))


def listwise_softmax(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0):
    """ListNet cross-entropy (module docstring); groups with fewer than 2 entries add nothing."""
    neg = torch.finfo(scores.dtype).min
    target = torch.softmax(torch.where(mask, _zscore(labels, mask) / temperature, neg), dim=1)
    log_p = F.log_softmax(torch.where(mask, scores, neg), dim=1)
    per_group = -(torch.where(mask, target * log_p, torch.zeros_like(log_p))).sum(dim=1)
    keep = mask.sum(dim=1) >= 2
    return per_group[keep].mean() if keep.any() else scores.sum() * 0.0


def pairwise_logistic(scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor):
    """RankNet logistic loss over the ordered pairs of each group (module docstring)."""
    diff = scores[:, :, None] - scores[:, None, :]
    better = (labels[:, :, None] > labels[:, None, :]) & mask[:, :, None] & mask[:, None, :]
    if not better.any():
        return scores.sum() * 0.0
    return F.softplus(-diff[better]).mean()


def ranking_loss(name: str, scores: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, temperature: float):
    """The loss called ``name`` (one of :data:`contracts.families.RANKING_LOSSES`)."""
    if name == "listwise_softmax":
        return listwise_softmax(scores, labels, mask, temperature)
    if name == "pairwise_logistic":
        return pairwise_logistic(scores, labels, mask)
    raise ValueError(f"ranking loss {name!r}: choose one of {RANKING_LOSSES}")
