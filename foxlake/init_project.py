"""``foxlake init DIR``: a folder for your own bars, laid out as the README's "Your own data" uses it.

``DIR/foxlake.yaml`` (the landing example config, every key documented in ``ml/config.py``) and
``DIR/RESULTS/lake/landing/`` (where your CSV or parquet files go). Nothing that exists is overwritten: an existing
``foxlake.yaml`` is refused, an existing RESULTS is kept as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ml.ingest import landing_dir

EXAMPLE = Path(__file__).resolve().parents[1] / "configs" / "landing-example.yaml"
CONFIG_NAME = "foxlake.yaml"


@dataclass(frozen=True)
class Layout:
    """What ``init`` made (or found) in its folder."""

    root: Path
    config: Path
    results: Path
    landing: Path

    def next_steps(self) -> list[str]:
        r, c = self.results, self.config
        return [
            f"cp my_bars.csv {self.landing}/      # ts,symbol,open,high,low,close,volume[,vwap,trades]",
            f"foxlake --results {r} materialize --config {c}",
            f"foxlake --results {r} catalog models",
            f"foxlake --results {r} live run --config {c}     # after newer bars landed and were materialized",
        ]


def init_project(root: str | Path) -> Layout:
    """Lay out ``root`` (made if missing).

    Raises:
        FileExistsError: ``root/foxlake.yaml`` exists, or ``root`` is a file (nothing was written).
    """
    root = Path(root).resolve()
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root}: is a file, not a folder; name a folder (nothing was written)")
    config = root / CONFIG_NAME
    if config.exists():
        raise FileExistsError(f"{config}: exists; init does not overwrite it (nothing was written)")
    results = root / "RESULTS"
    landing = landing_dir(results)
    landing.mkdir(parents=True, exist_ok=True)
    text = EXAMPLE.read_text(encoding="utf-8")
    config.write_text(text.replace("configs/landing-example.yaml", str(config)), encoding="utf-8")
    return Layout(root, config, results, landing)
