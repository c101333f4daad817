"""Raw-sequence families (contract 1.3): ``LSTM`` and ``Transformer`` over normalised OHLCV windows, in torch.

``X`` is ``[windows, sequence_length, channels]``, normalised by :func:`ml.sequences.normalize_windows` (the caller
builds and normalises the windows: training from the bars, live trading from its ring buffer, with the same
function). Inside the model each channel is standardised with the training mean and standard deviation.

The objective is the ``loss`` hyper-parameter: ``mse`` (pointwise, on the standardised target; predictions come
back in the target's units) or a ranking loss over timestamp groups (:mod:`ml.ranking_losses`:
``pairwise_logistic``, ``listwise_softmax``; predictions are scores whose order within one timestamp is what they
mean). Ranking fits draw batches of whole timestamps.

The file is ``model.pt``: a dict of tensors, strings, ints, floats and lists of them only (``arch``,
``state_dict``, ``sequence_length``, ``channels``, ``normalization``, ``hidden``, ``layers``, ``heads``, ``loss``,
``input_mean``, ``input_std``, ``y_mean``, ``y_std``), so it loads with ``torch.load(weights_only=True)``.

Deterministic with a seed: weights are initialised and batches drawn on the CPU from the seed; CUDA, when used
(``device``, :mod:`ml.families.torch_runtime`), changes only floating-point rounding.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from contracts.families import POINTWISE_LOSS, RANKING_LOSSES
from ml.families.base import ModelFamily
from ml.families.torch_runtime import torch_threads, training_device
from ml.ranking_losses import group_index, ranking_loss
from ml.sequences import SequenceSpec, spec_from_params

_PREDICT_BATCH = 8192
_KEYS = ("arch", "state_dict", "sequence_length", "channels", "normalization", "hidden", "layers", "input_mean")
LOSSES = (POINTWISE_LOSS, *RANKING_LOSSES)


class LSTMNet(nn.Module):
    """An LSTM over the window; a linear head on the last bar's hidden state."""

    def __init__(self, channels: int, hidden: int, layers: int, heads: int, length: int, dropout: float) -> None:
        super().__init__()
        self.lstm = nn.LSTM(channels, hidden, num_layers=layers, batch_first=True, dropout=dropout if layers > 1 else 0)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).squeeze(-1)


class TransformerNet(nn.Module):
    """A small pre-norm Transformer encoder over the window (learned positions); a linear head on the last bar."""

    def __init__(self, channels: int, hidden: int, layers: int, heads: int, length: int, dropout: float) -> None:
        super().__init__()
        self.embed = nn.Linear(channels, hidden)
        self.position = nn.Parameter(torch.zeros(length, hidden))
        layer = nn.TransformerEncoderLayer(
            hidden, heads, 2 * hidden, dropout, batch_first=True, norm_first=True, activation="gelu"
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(x) + self.position)
        return self.head(h[:, -1]).squeeze(-1)


_ARCHS: dict[str, type[nn.Module]] = {"LSTM": LSTMNet, "Transformer": TransformerNet}


@dataclass
class SequenceModel:
    """A trained sequence network, the window it reads and the statistics its inputs and output are scaled with."""

    arch: str
    net: nn.Module
    spec: SequenceSpec
    hidden: int
    layers: int
    heads: int
    loss: str
    input_mean: torch.Tensor  # float32, per channel
    input_std: torch.Tensor  # float32, per channel
    y_mean: float
    y_std: float

    def tensor(self, X: np.ndarray) -> torch.Tensor:
        """Standardised float32 inputs, after checking the window shape."""
        X = np.asarray(X)
        expected = (self.spec.length, len(self.spec.channels))
        if X.ndim != 3 or X.shape[1:] != expected:
            raise ValueError(f"{self.arch} reads windows of shape (n, {expected[0]}, {expected[1]}), got {X.shape}")
        return (torch.from_numpy(X.astype(np.float32)) - self.input_mean) / self.input_std

    def to_state(self) -> dict[str, Any]:
        return {
            "arch": self.arch,
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
            "sequence_length": int(self.spec.length),
            "channels": list(self.spec.channels),
            "normalization": self.spec.normalization,
            "hidden": int(self.hidden),
            "layers": int(self.layers),
            "heads": int(self.heads),
            "loss": self.loss,
            "input_mean": self.input_mean.clone(),
            "input_std": self.input_std.clone(),
            "y_mean": float(self.y_mean),
            "y_std": float(self.y_std),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any], arch: str) -> SequenceModel:
        missing = [k for k in _KEYS if k not in state]
        if missing:
            raise ValueError(f"{arch} model file lacks {missing}")
        if state["arch"] != arch:
            raise ValueError(f"the model file holds a {state['arch']} network, not a {arch}")
        spec = SequenceSpec(
            length=int(state["sequence_length"]),
            channels=tuple(state["channels"]),
            normalization=state["normalization"],
        )
        hidden, layers, heads = int(state["hidden"]), int(state["layers"]), int(state.get("heads", 1))
        net = _ARCHS[arch](len(spec.channels), hidden, layers, heads, spec.length, 0.0)
        net.load_state_dict(state["state_dict"], strict=True)
        net.eval()
        return cls(
            arch, net, spec, hidden, layers, heads, str(state.get("loss", "mse")),
            state["input_mean"].float(), state["input_std"].float(),
            float(state.get("y_mean", 0.0)), float(state.get("y_std", 1.0)),
        )  # fmt: skip


class SequenceFamily(ModelFamily):
    """Shared fit/predict/save of the raw-sequence networks; subclasses name the architecture.

    Hyper-parameters (defaults in :attr:`default_params`): ``sequence_length`` (bars, 16), ``channels`` (OHLCV),
    ``normalization`` (``returns``), ``loss`` (``mse``), ``hidden`` (16 units), ``layers`` (1), ``heads`` (2,
    Transformer only), ``dropout`` (0), ``lr`` (2e-3), ``weight_decay`` (1e-5), ``epochs`` (6), ``batch_size``
    (1024 windows, pointwise), ``batch_timestamps`` (64 timestamps, ranking), ``temperature`` (1.0, listwise),
    ``device`` (``auto``), ``num_threads`` (1 intra-op thread).
    """

    input_mode = "raw_sequence"
    arch: str = ""
    default_params: dict[str, Any] = {
        "sequence_length": 16,
        "channels": ["open", "high", "low", "close", "volume"],
        "normalization": "returns",
        "loss": POINTWISE_LOSS,
        "hidden": 16,
        "layers": 1,
        "heads": 2,
        "dropout": 0.0,
        "lr": 2e-3,
        "weight_decay": 1e-5,
        "epochs": 6,
        "batch_size": 1024,
        "batch_timestamps": 64,
        "temperature": 1.0,
        "device": "auto",
        "num_threads": 1,
    }

    def ranking_loss(self, params: dict[str, Any]) -> str | None:
        loss = {**self.default_params, **params}["loss"]
        if loss not in LOSSES:
            raise ValueError(f"{self.name} loss {loss!r}: choose one of {LOSSES}")
        return loss if loss in RANKING_LOSSES else None

    def sequence_spec(self, model: SequenceModel) -> SequenceSpec:
        return model.spec

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        feature_names: list[str],
        params: dict[str, Any],
        seed: int,
        groups: np.ndarray | None = None,
    ) -> SequenceModel:
        p = {**self.default_params, **params}
        spec = spec_from_params(p)
        loss = p["loss"]
        ranked = self.ranking_loss(p) is not None
        if ranked and groups is None:
            raise ValueError(f"{self.name} with loss {loss!r} needs the rows' timestamp groups")
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        if X.ndim != 3 or X.shape[1:] != (spec.length, len(spec.channels)) or X.shape[0] != y.shape[0]:
            raise ValueError(f"{self.name}: windows {X.shape} and target {y.shape} do not match {spec}")
        flat = X.reshape(-1, X.shape[2])
        mean = flat.mean(axis=0)
        std = flat.std(axis=0)
        std = np.where(std > 1e-12, std, 1.0)
        y_mean = 0.0 if ranked else float(y.mean())
        y_std = 1.0 if ranked else (float(y.std()) if y.std() > 1e-12 else 1.0)
        hidden, layers, heads = int(p["hidden"]), int(p["layers"]), int(p["heads"])
        device = training_device(str(p["device"]))
        with torch_threads(int(p["num_threads"])), torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            generator = torch.Generator().manual_seed(int(seed))
            net = _ARCHS[self.arch](len(spec.channels), hidden, layers, heads, spec.length, float(p["dropout"]))
            model = SequenceModel(
                self.arch, net, spec, hidden, layers, heads, loss,
                torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(std.astype(np.float32)), y_mean, y_std,
            )  # fmt: skip
            inputs = model.tensor(X).to(device)
            target = torch.from_numpy(((y - y_mean) / y_std).astype(np.float32)).to(device)
            net.to(device)
            optimiser = torch.optim.Adam(net.parameters(), lr=float(p["lr"]), weight_decay=float(p["weight_decay"]))
            net.train()
            if ranked:
                self._fit_ranked(net, optimiser, inputs, target, groups, p, generator, device)
            else:
                self._fit_pointwise(net, optimiser, inputs, target, p, generator)
            net.to("cpu").eval()
        return model

    @staticmethod
    def _fit_pointwise(net, optimiser, inputs, target, p, generator) -> None:
        n, batch = inputs.shape[0], max(1, int(p["batch_size"]))
        for _ in range(int(p["epochs"])):
            order = torch.randperm(n, generator=generator).to(inputs.device)
            for start in range(0, n, batch):
                idx = order[start : start + batch]
                optimiser.zero_grad(set_to_none=True)
                nn.functional.mse_loss(net(inputs[idx]), target[idx]).backward()
                optimiser.step()

    @staticmethod
    def _fit_ranked(net, optimiser, inputs, target, groups, p, generator, device) -> None:
        index = torch.from_numpy(group_index(groups)).to(device)  # [timestamps, symbols], -1 pads
        n_groups, batch = index.shape[0], max(1, int(p["batch_timestamps"]))
        for _ in range(int(p["epochs"])):
            order = torch.randperm(n_groups, generator=generator).to(device)
            for start in range(0, n_groups, batch):
                rows = index[order[start : start + batch]]
                mask = rows >= 0
                scores = torch.zeros(rows.shape, device=device)
                scores[mask] = net(inputs[rows[mask]])
                labels = torch.where(mask, target[rows.clamp(min=0)], torch.zeros_like(scores))
                optimiser.zero_grad(set_to_none=True)
                ranking_loss(p["loss"], scores, labels, mask, float(p["temperature"])).backward()
                optimiser.step()

    def predict(self, model: SequenceModel, X: np.ndarray) -> np.ndarray:
        Z = model.tensor(X)
        out = np.empty(Z.shape[0], dtype=float)
        with torch_threads(int(self.default_params["num_threads"])), torch.inference_mode():
            for start in range(0, Z.shape[0], _PREDICT_BATCH):
                chunk = model.net(Z[start : start + _PREDICT_BATCH])
                out[start : start + chunk.shape[0]] = chunk.double().numpy()
        return out * model.y_std + model.y_mean

    def save(self, model: SequenceModel, path: Path) -> None:
        torch.save(model.to_state(), str(path))

    def load_bytes(self, data: bytes) -> SequenceModel:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        return SequenceModel.from_state(state, self.arch)

    def n_features(self, model: SequenceModel) -> int:
        return 0  # raw OHLCV: the meta's feature_list is empty


class LSTMFamily(SequenceFamily):
    name = "LSTM"
    arch = "LSTM"


class TransformerFamily(SequenceFamily):
    name = "Transformer"
    arch = "Transformer"
