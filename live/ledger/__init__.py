"""The live record: one SQLite ledger per account under ``RESULTS/live/<account>/``."""

from live.ledger.reader import LedgerReader
from live.ledger.schema import ledger_file
from live.ledger.writer import LedgerWriter

__all__ = ["LedgerReader", "LedgerWriter", "ledger_file"]
