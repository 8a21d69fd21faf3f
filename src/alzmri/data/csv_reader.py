"""Reading the CSV files alzmri writes and reads back (manifests, groups files)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from alzmri.errors import AlzmriError

__all__ = ["read_csv_rows"]


def read_csv_rows(path: Path, *, what: str, fix: str, encoding: str = "utf-8") -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows of a CSV file.

    Parameters
    ----------
    path : Path
        An existing file.
    what : str
        The kind of file, for the message (``"manifest"``: "not a manifest CSV").
    fix : str
        What to do instead, ending the message.
    encoding : str, default="utf-8"
        ``"utf-8-sig"`` also accepts a byte-order mark.

    Returns
    -------
    header : list of str
        The column names (empty for an empty file).
    rows : list of dict
        One ``{column: value}`` per line after the header.

    Raises
    ------
    AlzmriError
        The file is not text in ``encoding`` or not CSV: "PATH: not a WHAT CSV (reason); FIX".
    """
    try:
        reader = csv.DictReader(io.StringIO(path.read_text(encoding=encoding)))
        return list(reader.fieldnames or []), list(reader)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AlzmriError(f"{path}: not a {what} CSV ({exc}); {fix}") from None
