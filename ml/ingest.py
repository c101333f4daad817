"""The landing zone: real bars enter the lake here (pure library code, no Dagster).

Drop files into ``RESULTS/lake/landing/`` and call :func:`ingest_landing`; the bars land in
``RESULTS/lake/bars/interval=<minutes>/date=<YYYY-MM-DD>/part-0.parquet`` (see :mod:`ml.lake`).

Landing schema
--------------
One row per bar and symbol. Column names are exact and lower case; other columns are ignored.

============  ==========================  ==================================================================
column        type                        meaning
============  ==========================  ==================================================================
``ts``        timestamp, UTC              the bar's CLOSE time (a daily bar closing 21:00 UTC is
                                          ``2024-01-02T21:00:00Z``); the lake partition is its UTC date
``symbol``    text, non-empty             the instrument's ticker
``open``      float > 0                   first trade price of the bar, in the quote currency
``high``      float > 0                   highest price; ``high >= max(open, close, low)``
``low``       float > 0                   lowest price; ``low <= min(open, close)``
``close``     float > 0                   last trade price of the bar, in the quote currency
``volume``    float >= 0                  traded quantity in shares / contracts (not currency)
``vwap``      float > 0, optional         volume-weighted average price, quote currency; may be empty
``trades``    integer >= 0, optional      number of trades in the bar; may be empty
============  ==========================  ==================================================================

Numbers must be finite (no NaN / inf). Any bar interval from 1 minute to 1 day (1440 minutes), in whole
minutes; each file holds one interval, measured from the file (:func:`ml.bars.infer_interval_minutes`, the most
common gap between a symbol's consecutive bars). A declared ``interval_minutes`` must equal the measured one: daily
bars declared as 5-minute are refused with both numbers and the file named. Measuring needs at least two bars of
some symbol one interval apart; a file of one bar per symbol (e.g. one day of daily bars) needs
``interval_minutes``.

File formats
------------
* ``*.parquet``: ``ts`` a timestamp column (timezone-aware: converted to UTC; naive: taken as UTC), or text /
  epoch numbers as for CSV. Numeric columns may be any numeric type (or text holding numbers).
* ``*.csv``: UTF-8, comma-separated, with a header line. ``ts`` is one of

  - ISO-8601 text ``YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]]`` followed by ``Z``, ``UTC`` or an offset
    ``+HH:MM`` / ``+HHMM`` / ``+HH`` (converted to UTC), or by nothing: a NAIVE time is taken as UTC;
  - epoch numbers, when every ``ts`` of the file is a number: values below 1e11 are seconds, values from 1e11 to
    below 1e14 milliseconds (decided per file from the largest magnitude); microseconds/nanoseconds are refused.

  A date without a time of day is refused: ``ts`` is the bar's close time. Blank lines are skipped; an empty cell
  is a missing value (allowed only in ``vwap`` / ``trades``).

Error locations: for CSV the message gives the file LINE number (the header is line 1, so the first data row is
line 2) and the 0-based data row; for parquet the 0-based row. Only when a CSV has records spanning several lines
(quoted newlines) is the line number unknown, and the message says so and gives the data row only.

Ingestion rules
---------------
* Files are taken in file-name order; name them so that this is their arrival order (e.g. a timestamp prefix).
  Names starting with ``.`` or ``_`` are ignored. Put files in place atomically (write elsewhere, then rename):
  :func:`write_landing_csv` / :func:`write_landing_parquet` do that.
* ``_ingested.json`` in the landing folder records every ingested file: name -> sha256, rows, interval. A file
  whose name and content are recorded is skipped; a file whose content changed is ingested again (its rows win;
  rows it no longer holds stay in the lake — ingestion never deletes bars).
* Duplicates on (symbol, ts) keep the LAST occurrence: later rows of a file win, later files win, and the rows of
  this run win over the bars already in the lake.
* All or nothing: every pending file is read and validated and every affected partition merged in memory first;
  one bad file raises :class:`IngestError` (naming file, line/row and column of each bad file) and nothing is
  written. Then the affected date partitions are written (each atomically) and ``_ingested.json`` last, so a
  crash part-way leaves the files un-recorded and a re-run completes the same result (ingestion is idempotent).
  One ingestion at a time: concurrent runs on the same RESULTS are not supported.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from contracts.io import read_json, write_atomic_bytes, write_atomic_json
from ml.bars import (
    OPTIONAL_COLUMNS,
    REQUIRED_COLUMNS,
    BarSchemaError,
    check_interval,
    infer_interval_minutes,
    validate_bars,
)
from ml.lake import table_dir, write_partitions

LANDING_SUFFIXES = (".csv", ".parquet")
LEDGER_NAME = "_ingested.json"
LEDGER_VERSION = 1
BARS_TABLE = "bars"
MIN_INTERVAL_MINUTES = 1
MAX_INTERVAL_MINUTES = 1440
EPOCH_MS_FROM = 1e11
"""Epoch values at or above this magnitude are milliseconds (1e11 s would be the year 5138)."""
EPOCH_MAX = 1e14
"""Epoch values at or above this magnitude (micro-/nanoseconds) are refused."""

_ISO = (
    r"^(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)\s*"
    r"(?P<tz>Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?$"
)
_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
_BAR_ERROR = re.compile(r"row (\d+), column '([^']+)'")


class IngestError(ValueError):
    """Landing files rejected; nothing was written. ``problems`` holds one message per bad file."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            msg = f"{self.problems[0]} — nothing was ingested"
        else:
            msg = f"{len(self.problems)} landing files rejected, nothing was ingested:\n" + "\n".join(
                f"  - {p}" for p in self.problems
            )
        super().__init__(msg)


@dataclass
class IngestReport:
    """What one :func:`ingest_landing` call did.

    Attributes:
        files_ingested: landing file names ingested now, in ingestion (name) order.
        files_skipped: landing file names already ingested with the same content.
        rows_read: data rows read from the ingested files (blank lines excluded).
        rows_after_dedup: rows left after de-duplicating on (symbol, ts) within and across those files.
        rows_written: rows in the partitions written (the new rows merged with the bars already there).
        intervals: bar intervals (minutes) of the ingested files that held rows.
        partitions_written: interval -> dates (``YYYY-MM-DD``) of the partitions written.
        file_rows: file name -> data rows read.
        file_intervals: file name -> its interval (None for a file without rows and no ``interval_minutes``).
    """

    files_ingested: list[str] = field(default_factory=list)
    files_skipped: list[str] = field(default_factory=list)
    rows_read: int = 0
    rows_after_dedup: int = 0
    rows_written: int = 0
    intervals: list[int] = field(default_factory=list)
    partitions_written: dict[int, list[str]] = field(default_factory=dict)
    file_rows: dict[str, int] = field(default_factory=dict)
    file_intervals: dict[str, int | None] = field(default_factory=dict)

    @property
    def wrote_anything(self) -> bool:
        return any(self.partitions_written.values())


def landing_dir(results: str | Path) -> Path:
    """``RESULTS/lake/landing``: where files to ingest are dropped."""
    return Path(results) / "lake" / "landing"


def ledger_path(results: str | Path) -> Path:
    """``RESULTS/lake/landing/_ingested.json``."""
    return landing_dir(results) / LEDGER_NAME


def read_ledger(results: str | Path) -> dict[str, dict[str, Any]]:
    """The ingested files: name -> ``{"sha256", "rows", "interval_minutes"}`` (empty when none yet)."""
    path = ledger_path(results)
    if not path.exists():
        return {}
    data = read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise ValueError(f"{path}: not an ingestion ledger (expected an object with 'files')")
    return dict(data["files"])


def landing_files(results: str | Path) -> list[Path]:
    """The landing files (``*.csv``, ``*.parquet``; not hidden, not ``_``-prefixed), in name order."""
    directory = landing_dir(results)
    if not directory.is_dir():
        return []
    return sorted(
        p
        for p in directory.iterdir()
        if p.is_file() and p.suffix.lower() in LANDING_SUFFIXES and not p.name.startswith((".", "_"))
    )


# --------------------------------------------------------------------------------------------- parsing


class _Bad(Exception):
    """One bad value (or column): ``row`` is the 0-based row of the frame being parsed, None for a whole column."""

    def __init__(self, column: str, message: str, row: int | None = None):
        super().__init__(message)
        self.column, self.message, self.row = column, message, row


@dataclass
class _Locator:
    """Turns a row of the parsed frame into the location a user finds in the file."""

    kind: str  # "csv" | "parquet"
    original_rows: list[int]  # frame row -> 0-based data row of the file
    exact_lines: bool = True

    def where(self, row: int) -> str:
        data_row = self.original_rows[row] if 0 <= row < len(self.original_rows) else row
        if self.kind == "csv":
            if self.exact_lines:
                return f"line {data_row + 2} (data row {data_row}, 0-based)"
            return f"data row {data_row} (0-based; line number unknown: the file has multi-line records)"
        return f"row {data_row} (0-based)"


def _first_bad(mask: pl.Series) -> tuple[int, int] | None:
    """(first index, count) where ``mask`` is true, or None."""
    mask = mask.fill_null(False)
    count = int(mask.sum())
    if not count:
        return None
    return int(mask.arg_true()[0]), count


def _raise_first(mask: pl.Series, column: str, values: pl.Series, what: str) -> None:
    hit = _first_bad(mask)
    if hit is not None:
        row, count = hit
        raise _Bad(column, f"{what}: {values[row]!r} ({count} bad row(s))", row)


def _clean_text(s: pl.Series) -> pl.Series:
    """Whitespace stripped, empty text as null."""
    stripped = s.str.strip_chars()
    return stripped.set(stripped == "", None)


def _parse_float(s: pl.Series, column: str) -> pl.Series:
    if s.dtype == pl.String:
        text = _clean_text(s)
        out = text.cast(pl.Float64, strict=False)
        _raise_first(text.is_not_null() & out.is_null(), column, s, "not a number")
    elif s.dtype.is_numeric():
        out = s.cast(pl.Float64)
    elif s.dtype == pl.Null:
        out = s.cast(pl.Float64)
    else:
        raise _Bad(column, f"has type {s.dtype}, expected numbers")
    _raise_first(out.is_nan() | out.is_infinite(), column, s, "not a finite number")
    return out.alias(column)


def _parse_trades(s: pl.Series) -> pl.Series:
    if s.dtype.is_integer():
        out = s.cast(pl.Int64)
    else:
        f = _parse_float(s, "trades")
        _raise_first(f != f.floor(), "trades", s, "not a whole number")
        _raise_first(f.abs() >= 2.0**62, "trades", s, "out of range")
        out = f.cast(pl.Int64)
    _raise_first(out < 0, "trades", s, "negative")
    return out.alias("trades")


def _from_epoch(values: pl.Series, original: pl.Series) -> pl.Series:
    """Epoch seconds (< 1e11) or milliseconds (< 1e14), the unit decided by the largest magnitude."""
    v = values.cast(pl.Float64)
    _raise_first(v.is_nan() | v.is_infinite(), "ts", original, "not a finite epoch value")
    _raise_first(v.abs() >= EPOCH_MAX, "ts", original, "epoch value too large (only seconds or milliseconds)")
    biggest = v.abs().max()
    per_us = 1_000.0 if biggest is not None and float(biggest) >= EPOCH_MS_FROM else 1_000_000.0
    us = (v * per_us).round(0).cast(pl.Int64)
    return pl.from_epoch(us, time_unit="us").dt.replace_time_zone("UTC")


def _parse_iso(text: pl.Series, original: pl.Series) -> pl.Series:
    _raise_first(
        text.str.contains(r"^\d{4}-\d{2}-\d{2}$"),
        "ts",
        original,
        "a date without a time of day; ts is the bar's close time (e.g. 2024-01-02T21:00:00Z)",
    )
    parts = text.str.extract_groups(_ISO).struct.unnest()
    _raise_first(
        text.is_not_null() & parts["date"].is_null(),
        "ts",
        original,
        "not an ISO-8601 date and time (YYYY-MM-DD[T ]HH:MM[:SS[.f]][Z|±HH:MM]) nor an epoch number",
    )
    body = parts.select(
        pl.col("date")
        + " "
        + pl.col("time")
        + pl.when(pl.col("time").str.len_chars() == 5).then(pl.lit(":00")).otherwise(pl.lit(""))
    ).to_series()
    naive = body.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us")
    _raise_first(body.is_not_null() & naive.is_null(), "ts", original, "not a valid calendar date/time")
    tz = parts["tz"].fill_null("Z")
    frame = pl.DataFrame({"tz": tz}).with_columns(
        utc=pl.col("tz").is_in(["Z", "z", "UTC"]),
        digits=pl.col("tz").str.slice(1).str.replace(":", ""),
    )
    frame = frame.with_columns(
        hh=pl.when(pl.col("utc")).then(0).otherwise(pl.col("digits").str.slice(0, 2).cast(pl.Int64, strict=False)),
        mm=pl.when(pl.col("utc"))
        .then(0)
        .otherwise(pl.col("digits").str.slice(2, 2).replace("", "0").cast(pl.Int64, strict=False)),
    ).with_columns(
        sign=pl.when(pl.col("tz").str.starts_with("-")).then(-1).otherwise(1),
        bad=(pl.col("hh") > 23) | (pl.col("mm") > 59) | pl.col("hh").is_null() | pl.col("mm").is_null(),
    )
    _raise_first(frame["bad"] & text.is_not_null(), "ts", original, "bad UTC offset")
    offset_min = (frame["sign"] * (frame["hh"] * 60 + frame["mm"])).fill_null(0)
    shifted = pl.DataFrame({"n": naive, "o": offset_min}).select(
        (pl.col("n") - pl.duration(minutes=pl.col("o"))).alias("ts")
    )["ts"]
    return shifted.dt.replace_time_zone("UTC")


def _parse_ts(s: pl.Series) -> pl.Series:
    dtype = s.dtype
    if isinstance(dtype, pl.Datetime):
        out = s.dt.replace_time_zone("UTC") if dtype.time_zone is None else s.dt.convert_time_zone("UTC")
        out = out.cast(pl.Datetime("us", "UTC"))
    elif dtype == pl.Date:
        raise _Bad("ts", "is a date without a time of day; ts must be the bar's close time in UTC")
    elif dtype.is_numeric():
        out = _from_epoch(s, s)
    elif dtype == pl.String:
        text = _clean_text(s)
        numeric = text.str.contains(_NUMBER)
        if text.null_count() < text.len() and bool(numeric.fill_null(True).all()):
            out = _from_epoch(text.cast(pl.Float64), s)
        else:
            out = _parse_iso(text, s)
    else:
        raise _Bad("ts", f"has type {dtype}, expected a timestamp, ISO-8601 text or epoch numbers")
    _raise_first(out.is_null(), "ts", s, "missing value")
    return out.alias("ts")


def _parse_symbol(s: pl.Series) -> pl.Series:
    if s.dtype in (pl.String, pl.Categorical) or isinstance(s.dtype, pl.Enum):
        return s.cast(pl.String).str.strip_chars().alias("symbol")
    if s.dtype.is_integer() or s.dtype == pl.Null:
        return s.cast(pl.String).alias("symbol")
    raise _Bad("symbol", f"has type {s.dtype}, expected text")


def _read_raw(path: Path, data: bytes) -> tuple[pl.DataFrame, _Locator]:
    """The file as a frame (CSV: all text, blank lines dropped) and its row locator."""
    if path.suffix.lower() == ".csv":
        raw = pl.read_csv(io.BytesIO(data), infer_schema=False)
        raw = raw.rename({c: c.strip() for c in raw.columns})
        lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
        exact = lines == raw.height + 1
        raw = raw.with_row_index("__row").filter(~pl.all_horizontal(pl.exclude("__row").is_null()))
        rows = raw["__row"].cast(pl.Int64).to_list()
        return raw.drop("__row"), _Locator("csv", rows, exact)
    raw = pl.read_parquet(io.BytesIO(data))
    return raw, _Locator("parquet", list(range(raw.height)))


def _parse_bars(raw: pl.DataFrame) -> pl.DataFrame:
    """Typed bar columns, rows in file order (no filtering, so frame rows stay file rows)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise _Bad(", ".join(missing), f"missing required column(s) {missing}; the file has {raw.columns}")
    cols = [_parse_ts(raw["ts"]), _parse_symbol(raw["symbol"])]
    cols += [_parse_float(raw[c], c) for c in REQUIRED_COLUMNS if c not in ("ts", "symbol")]
    if "vwap" in raw.columns:
        vwap = _parse_float(raw["vwap"], "vwap")
        _raise_first(vwap <= 0, "vwap", raw["vwap"], "not a positive price")
        cols.append(vwap)
    if "trades" in raw.columns:
        cols.append(_parse_trades(raw["trades"]))
    return pl.DataFrame(cols)


def _bar_error_message(exc: BarSchemaError, source: str, loc: _Locator) -> str:
    text = str(exc)
    head, rest = (text[: len(source)], text[len(source) :]) if text.startswith(source) else ("", text)
    match = _BAR_ERROR.search(rest)
    if match is None:
        return text
    where = loc.where(int(match.group(1)))
    return head + rest[: match.start()] + f"{where}, column '{match.group(2)}'" + rest[match.end() :]


def read_landing_file(path: str | Path, data: bytes | None = None) -> tuple[pl.DataFrame, int]:
    """Read, type and validate one landing file.

    Returns:
        (bars, rows_read): the bars in the bar schema, de-duplicated on (symbol, ts) keeping the last occurrence
        and sorted by (symbol, ts); and the number of data rows read (blank lines excluded).

    Raises:
        IngestError: naming the file, the line (CSV) or row (parquet) and the column of the first problem found.
    """
    path = Path(path)
    source = str(path)
    if data is None:
        data = path.read_bytes()
    try:
        raw, loc = _read_raw(path, data)
    except (pl.exceptions.PolarsError, OSError, ValueError) as exc:
        raise IngestError([f"{source}: cannot read as {path.suffix.lstrip('.').upper()}: {exc}"]) from None
    try:
        typed = _parse_bars(raw)
    except _Bad as bad:
        where = "" if bad.row is None else f" {loc.where(bad.row)},"
        raise IngestError([f"{source}:{where} column '{bad.column}': {bad.message}"]) from None
    try:
        bars = validate_bars(typed, source=source)
    except BarSchemaError as exc:
        raise IngestError([_bar_error_message(exc, source, loc)]) from None
    return bars, typed.height


def _check_interval(value: float, what: str) -> int:
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{what}: interval {value!r} minutes is not a whole number of minutes")
    if not MIN_INTERVAL_MINUTES <= value <= MAX_INTERVAL_MINUTES:
        raise ValueError(
            f"{what}: interval {value:g} minutes is outside {MIN_INTERVAL_MINUTES}..{MAX_INTERVAL_MINUTES} "
            "(1 minute to 1 day)"
        )
    return int(value)


def _file_interval(bars: pl.DataFrame, given: int | None, source: str) -> int | None:
    """The file's interval: measured from its bars, and equal to ``given`` when one is declared (a file of one bar
    per symbol cannot be measured and takes the declared interval)."""
    if bars.height == 0:
        return given
    if given is not None:
        try:
            check_interval(bars, given, source)
        except ValueError as exc:
            raise IngestError([f"{exc}; fix the declared interval or the file"]) from None
        return given
    try:
        inferred = infer_interval_minutes(bars)
    except ValueError as exc:
        raise IngestError([f"{source}: {exc}; pass interval_minutes"]) from None
    try:
        return _check_interval(inferred, f"{source}: inferred")
    except ValueError as exc:
        raise IngestError([f"{exc}; pass interval_minutes if the inference is wrong"]) from None


# --------------------------------------------------------------------------------------------- ingestion


def _checked(path: Path, data: bytes, given: int | None) -> tuple[pl.DataFrame, int, int | None]:
    bars, rows = read_landing_file(path, data)
    return bars, rows, _file_interval(bars, given, str(path))


def pending_landing_files(results: str | Path) -> list[tuple[Path, str]]:
    """The landing files not yet ingested with their current content: ``(path, sha256)`` in name order."""
    ledger = read_ledger(results)
    out = []
    for path in landing_files(results):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if ledger.get(path.name, {}).get("sha256") != digest:
            out.append((path, digest))
    return out


def check_landing_file(path: str | Path, interval_minutes: int | None = None) -> tuple[int, list[str]]:
    """Everything :func:`ingest_landing` checks of one file, without writing: its data rows and the UTC dates
    (``YYYY-MM-DD``) its bars fall on.

    Raises:
        IngestError: naming the file, the line/row and the column of the first problem.
    """
    given = None if interval_minutes is None else _check_interval(float(interval_minutes), "interval_minutes")
    path = Path(path)
    bars, rows, _interval = _checked(path, path.read_bytes(), given)
    return rows, sorted(bars.select(pl.col("ts").dt.date().cast(pl.String).unique())["ts"].to_list())


def rejected_dir(results: str | Path) -> Path:
    """``RESULTS/lake/landing/rejected``: bad landing files, each beside ``<name>.reason.txt``."""
    return landing_dir(results) / "rejected"


def reject_landing_file(results: str | Path, path: str | Path, reason: str) -> Path:
    """Move a bad landing file into ``rejected/`` (a name already there gets a numbered suffix) with a reason file
    beside it; the files after it are ingested without it. Returns the moved file's path."""
    path = Path(path)
    directory = rejected_dir(results)
    directory.mkdir(parents=True, exist_ok=True)
    dest, n = directory / path.name, 1
    while dest.exists():
        dest, n = directory / f"{path.stem}.{n}{path.suffix}", n + 1
    write_atomic_bytes(dest.with_name(dest.name + ".reason.txt"), (reason.rstrip() + "\n").encode("utf-8"))
    path.replace(dest)
    return dest


def _column_order(columns: list[str]) -> list[str]:
    known = [c for c in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS) if c in columns]
    return known + [c for c in columns if c not in known]


def _merge_partitions(new: pl.DataFrame, directory: Path) -> pl.DataFrame:
    """``new`` merged with the bars already in its date partitions (new rows win on (symbol, ts))."""
    dates = new.select(pl.col("ts").dt.date().cast(pl.String).unique())["ts"].to_list()
    existing = [directory / f"date={d}" / "part-0.parquet" for d in sorted(dates)]
    frames = []
    for f in existing:
        if f.exists():
            try:
                frames.append(pl.read_parquet(f))
            except (pl.exceptions.PolarsError, OSError) as exc:
                raise IngestError([f"{f}: cannot read the existing partition: {exc}"]) from None
    if not frames:
        return new
    merged = pl.concat([*frames, new], how="diagonal_relaxed")
    merged = merged.unique(subset=["symbol", "ts"], keep="last", maintain_order=True).sort("symbol", "ts")
    return merged.select(_column_order(merged.columns))


def ingest_landing(results: str | Path, interval_minutes: float | None = None) -> IngestReport:
    """Ingest every new or changed landing file into ``RESULTS/lake/bars/interval=<m>/``, all or nothing.

    Args:
        results: the RESULTS folder.
        interval_minutes: the bar interval of ALL pending files (whole minutes, 1..1440); None infers each
            file's interval from its bars.

    Returns:
        An :class:`IngestReport`; with no pending file nothing is written and every file is in ``files_skipped``.

    Raises:
        IngestError: when any pending file is bad (every bad file named, with line/row and column) or an existing
            partition cannot be read; then no partition and not ``_ingested.json`` was touched.
    """
    given = None if interval_minutes is None else _check_interval(float(interval_minutes), "interval_minutes")
    ledger = read_ledger(results)
    report = IngestReport()

    # 1. read and validate everything
    problems: list[str] = []
    pending: list[tuple[str, str, pl.DataFrame, int | None]] = []  # name, sha256, bars, interval
    for path in landing_files(results):
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if ledger.get(path.name, {}).get("sha256") == digest:
            report.files_skipped.append(path.name)
            continue
        try:
            bars, rows, interval = _checked(path, data, given)
        except IngestError as exc:
            problems.extend(exc.problems)
            continue
        pending.append((path.name, digest, bars, interval))
        report.file_rows[path.name] = rows
        report.file_intervals[path.name] = interval
    if problems:
        raise IngestError(problems)

    # 2. de-duplicate per interval and merge with the affected partitions, all in memory
    by_interval: dict[int, list[pl.DataFrame]] = {}
    for _name, _digest, bars, interval in pending:
        if interval is not None and bars.height:
            by_interval.setdefault(interval, []).append(bars)
    to_write: dict[int, pl.DataFrame] = {}
    for interval, frames in sorted(by_interval.items()):
        batch = pl.concat(frames, how="diagonal_relaxed")
        batch = batch.unique(subset=["symbol", "ts"], keep="last", maintain_order=True).sort("symbol", "ts")
        batch = batch.select(_column_order(batch.columns))
        report.rows_after_dedup += batch.height
        to_write[interval] = _merge_partitions(batch, table_dir(results, BARS_TABLE, interval))

    # 3. write: partitions first (each atomic), the ledger last
    for interval, merged in to_write.items():
        report.partitions_written[interval] = write_partitions(merged, table_dir(results, BARS_TABLE, interval))
        report.rows_written += merged.height
    report.intervals = sorted(to_write)
    report.files_ingested = [name for name, *_ in pending]
    report.rows_read = sum(report.file_rows.values())
    if pending:
        for name, digest, _bars, interval in pending:
            ledger[name] = {"sha256": digest, "rows": report.file_rows[name], "interval_minutes": interval}
        write_atomic_json(ledger_path(results), {"version": LEDGER_VERSION, "files": ledger})
    return report


# --------------------------------------------------------------------------------------------- writing helpers


def _utc(df: pl.DataFrame) -> pl.DataFrame:
    dtype = df.schema["ts"]
    if isinstance(dtype, pl.Datetime):
        ts = pl.col("ts").dt.replace_time_zone("UTC") if dtype.time_zone is None else pl.col("ts")
        return df.with_columns(ts.dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC")))
    return df


def write_landing_csv(df: pl.DataFrame, path: str | Path) -> Path:
    """Write bars as a landing CSV (``ts`` as ISO-8601 UTC text ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``), atomically."""
    out = _utc(df)
    if isinstance(out.schema["ts"], pl.Datetime):
        out = out.with_columns(pl.col("ts").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ"))
    return write_atomic_bytes(path, out.write_csv().encode("utf-8"))


def write_landing_parquet(df: pl.DataFrame, path: str | Path) -> Path:
    """Write bars as a landing parquet file (``ts`` a UTC timestamp), atomically."""
    buf = io.BytesIO()
    _utc(df).write_parquet(buf, compression="zstd")
    return write_atomic_bytes(path, buf.getvalue())
