"""read_csv_rows: header and rows of a CSV file, or one AlzmriError naming the file and the fix."""

from __future__ import annotations

import pytest

from alzmri.data.csv_reader import read_csv_rows
from alzmri.errors import AlzmriError


def test_header_and_rows(tmp_path):
    f = tmp_path / "a.csv"
    f.write_bytes(b"\xef\xbb\xbfpath,group\nx.jpg,1\ny.jpg,2\n")
    assert read_csv_rows(f, what="groups", fix="fix", encoding="utf-8-sig") == (
        ["path", "group"], [{"path": "x.jpg", "group": "1"}, {"path": "y.jpg", "group": "2"}])
    header, _ = read_csv_rows(f, what="manifest", fix="fix")  # plain utf-8 keeps the byte-order mark
    assert header == ["\ufeffpath", "group"]
    (tmp_path / "empty.csv").write_text("")
    assert read_csv_rows(tmp_path / "empty.csv", what="groups", fix="fix") == ([], [])


def test_not_text_names_the_file_and_the_fix(tmp_path):
    f = tmp_path / "b.csv"
    f.write_bytes(b"path\n\xff\xfe\n")
    with pytest.raises(AlzmriError, match=r"b\.csv: not a manifest CSV \(.*\); pass a manifest\.csv$"):
        read_csv_rows(f, what="manifest", fix="pass a manifest.csv")
