"""MLP: a small feed-forward torch network, saved as one ``model.pt`` of tensors and plain numbers.

The file is a dict ``{"state_dict", "input_mean", "input_std", "input_median", "hidden", "dropout",
"n_features", "y_mean", "y_std"}`` holding only tensors, lists of ints, ints and floats, so it loads with
``torch.load(path, weights_only=True)`` (no pickled classes).

Preprocessing: non-finite inputs are imputed with the train median, then standardised with the train mean/std
(of the imputed data); the target is standardised with the train mean/std. :meth:`MLPFamily.predict` returns
the **de-standardised** score (``net(x) * y_std + y_mean``), i.e. in the target's units; ranking is unaffected.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ml.families.base import ModelFamily, normalise_importance
from ml.families.torch_runtime import torch_threads

_PREDICT_BATCH = 65536
_IMPORTANCE_SAMPLE = 4096
_KEYS = ("state_dict", "input_mean", "input_std", "input_median", "hidden", "n_features", "y_mean", "y_std")


def _build_net(n_features: int, hidden: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = n_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


@dataclass
class MLPModel:
    """A trained network plus the train-set statistics its inputs and output are scaled with."""

    net: nn.Sequential
    input_mean: torch.Tensor  # float64, per feature (after median imputation)
    input_std: torch.Tensor  # float64, per feature; constant columns get 1
    input_median: torch.Tensor  # float64, per feature; all-missing columns get 0
    hidden: list[int]
    dropout: float
    n_features: int
    y_mean: float
    y_std: float

    def transform(self, X: np.ndarray) -> torch.Tensor:
        """Impute and standardise ``X`` exactly as in training; float32 tensor for the network."""
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"MLP expects {self.n_features} feature columns, got shape {X.shape}")
        median = self.input_median.numpy()
        X = np.where(np.isfinite(X), X, median)
        Z = (X - self.input_mean.numpy()) / self.input_std.numpy()
        return torch.from_numpy(Z.astype(np.float32))

    def to_state(self) -> dict[str, Any]:
        return {
            "state_dict": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
            "input_mean": self.input_mean.clone(),
            "input_std": self.input_std.clone(),
            "input_median": self.input_median.clone(),
            "hidden": [int(h) for h in self.hidden],
            "dropout": float(self.dropout),
            "n_features": int(self.n_features),
            "y_mean": float(self.y_mean),
            "y_std": float(self.y_std),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> MLPModel:
        missing = [k for k in _KEYS if k not in state]
        if missing:
            raise ValueError(f"MLP model file lacks {missing}")
        hidden = [int(h) for h in state["hidden"]]
        dropout = float(state.get("dropout", 0.0))
        n_features = int(state["n_features"])
        net = _build_net(n_features, hidden, dropout)
        net.load_state_dict(state["state_dict"], strict=True)
        net.eval()
        return cls(
            net=net,
            input_mean=state["input_mean"].to(torch.float64),
            input_std=state["input_std"].to(torch.float64),
            input_median=state["input_median"].to(torch.float64),
            hidden=hidden,
            dropout=dropout,
            n_features=n_features,
            y_mean=float(state["y_mean"]),
            y_std=float(state["y_std"]),
        )


class MLPFamily(ModelFamily):
    """Two hidden ReLU layers with dropout, trained with Adam on MSE of the standardised target."""

    name = "MLP"
    default_params: dict[str, Any] = {
        "hidden": [64, 64],
        "dropout": 0.1,
        "lr": 1e-3,
        "weight_decay": 1e-4,
        "batch_size": 1024,
        "epochs": 8,
        # torch intra-op threads for fit/predict. 1, not 2: for a 64-wide net the per-op work is too small to
        # split, and measured on 50k×30 a second thread made fit 1.5-7× slower (OpenMP spin-waits under load).
        "num_threads": 1,
    }

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        feature_names: list[str],
        params: dict[str, Any],
        seed: int,
        groups: np.ndarray | None = None,
    ) -> MLPModel:
        p = {**self.default_params, **params}
        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float).reshape(-1)
        if X.ndim != 2 or X.shape[0] != y.shape[0]:
            raise ValueError(f"X {X.shape} and y {y.shape} do not line up")
        n, n_features = X.shape

        finite = np.where(np.isfinite(X), X, np.nan)
        with np.errstate(all="ignore"):
            median = np.nanmedian(finite, axis=0) if n else np.zeros(n_features)
        median = np.where(np.isfinite(median), median, 0.0)
        imputed = np.where(np.isfinite(X), X, median)
        mean = imputed.mean(axis=0) if n else np.zeros(n_features)
        std = imputed.std(axis=0) if n else np.ones(n_features)
        std = np.where(std > 1e-12, std, 1.0)
        y_mean = float(y.mean()) if n else 0.0
        y_std = float(y.std()) if n else 1.0
        y_std = y_std if y_std > 1e-12 else 1.0

        hidden = [int(h) for h in p["hidden"]]
        dropout = float(p["dropout"])
        batch_size = max(1, int(p["batch_size"]))
        with torch_threads(int(p["num_threads"])), torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            generator = torch.Generator().manual_seed(int(seed))
            net = _build_net(n_features, hidden, dropout)
            model = MLPModel(
                net=net,
                input_mean=torch.from_numpy(mean.astype(np.float64)),
                input_std=torch.from_numpy(std.astype(np.float64)),
                input_median=torch.from_numpy(median.astype(np.float64)),
                hidden=hidden,
                dropout=dropout,
                n_features=n_features,
                y_mean=y_mean,
                y_std=y_std,
            )
            Z = model.transform(X)
            target = torch.from_numpy(((y - y_mean) / y_std).astype(np.float32))
            optimiser = torch.optim.Adam(net.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
            loss_fn = nn.MSELoss()
            net.train()
            for _ in range(int(p["epochs"])):
                order = torch.randperm(n, generator=generator)
                for start in range(0, n, batch_size):
                    idx = order[start : start + batch_size]
                    optimiser.zero_grad(set_to_none=True)
                    loss = loss_fn(net(Z[idx]).squeeze(-1), target[idx])
                    loss.backward()
                    optimiser.step()
            net.eval()
        return model

    def predict(self, model: MLPModel, X: np.ndarray) -> np.ndarray:
        Z = model.transform(X)
        model.net.eval()
        out = np.empty(Z.shape[0], dtype=float)
        with torch_threads(int(self.default_params["num_threads"])), torch.inference_mode():
            for start in range(0, Z.shape[0], _PREDICT_BATCH):
                chunk = model.net(Z[start : start + _PREDICT_BATCH]).squeeze(-1)
                out[start : start + chunk.shape[0]] = chunk.double().numpy()
        return out * model.y_std + model.y_mean

    def save(self, model: MLPModel, path: Path) -> None:
        torch.save(model.to_state(), str(path))

    def load_bytes(self, data: bytes) -> MLPModel:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        return MLPModel.from_state(state)

    def n_features(self, model: MLPModel) -> int:
        return int(model.n_features)

    def importance(self, model: MLPModel, feature_names: list[str]) -> dict[str, float]:
        """Mean |d output / d input| over a fixed sample of standard-normal inputs.

        The network sees standardised inputs, so N(0, 1) draws cover its training domain; the sample comes from a
        fixed private generator, so importance is deterministic and needs no data beyond the model.
        """
        generator = torch.Generator().manual_seed(0)
        Z = torch.randn(_IMPORTANCE_SAMPLE, model.n_features, generator=generator).requires_grad_(True)
        model.net.eval()
        with torch_threads(int(self.default_params["num_threads"])), torch.enable_grad():
            model.net(Z).sum().backward()
        sensitivity = Z.grad.abs().mean(dim=0).double().numpy()
        return normalise_importance(sensitivity, feature_names)
