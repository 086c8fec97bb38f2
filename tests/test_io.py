"""Bad input at the file level: encodings, line ends, compression, binary and empty files."""

import gzip
import json

import pytest

from tunesmith.data.formats import load_records
from tunesmith.data.io import read_csv, read_jsonl
from tunesmith.errors import TunesmithError

ROW = {"messages": [{"role": "user", "content": "héllo"}, {"role": "assistant", "content": "hi"}]}


def test_bom_crlf_and_gzip_are_read_transparently(tmp_path):
    text = json.dumps(ROW, ensure_ascii=False) + "\r\n" + json.dumps(ROW) + "\r\n"
    bom = tmp_path / "bom.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    gz = tmp_path / "d.jsonl.gz"
    gz.write_bytes(gzip.compress(text.encode("utf-8")))
    for path in (bom, gz):
        recs = load_records([path])
        assert [r.line for r in recs] == [1, 2] and recs[0].messages[0]["content"] == "héllo"
    csv_file = tmp_path / "rows.csv"
    csv_file.write_bytes(b"\xef\xbb\xbftext,label\r\nhi,a\r\n")
    assert list(read_csv(csv_file)) == [(2, {"text": "hi", "label": "a"})]


def test_latin1_line_is_named_and_the_rest_still_checked(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        json.dumps(ROW).encode() + b"\n" + '{"prompt": "caf\xe9", "completion": "x"}\n'.encode("latin-1") + b"{broken\n"
    )
    with pytest.raises(TunesmithError) as info:
        list(read_jsonl(path))
    text = str(info.value)
    assert f"{path}:2" in text and "not UTF-8 (byte 0xe9" in text
    assert f"{path}:3" in text and "not valid JSON" in text  # the line after the bad bytes was still read


def test_binary_empty_and_corrupt_gzip_files_are_clear_errors(tmp_path):
    binary = tmp_path / "model.jsonl"
    binary.write_bytes(b"\x00\x01\x02PK\x03\x04")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    corrupt = tmp_path / "bad.jsonl.gz"
    corrupt.write_bytes(b"not gzip at all")
    for path, title in ((binary, "Not a text file"), (empty, "Empty data file"), (corrupt, "Cannot read data file")):
        with pytest.raises(TunesmithError, match=title) as info:
            list(read_jsonl(path))
        assert info.value.problems[0].where == str(path)


def test_an_atomic_write_gives_a_new_file_the_umasks_mode_and_keeps_a_replaced_files(tmp_path):
    """Every file tunesmith wrote through a temp file was private (mkstemp's 0600): a report, a config from
    `init`, an export's manifest others on the machine could not read, and a replaced file lost its mode."""
    import os
    import stat

    from tunesmith.files import NEW_FILE_MODE, atomic_write_text

    mask = os.umask(0)
    os.umask(mask)
    new = atomic_write_text(tmp_path / "new.txt", "x")
    assert stat.S_IMODE(new.stat().st_mode) == NEW_FILE_MODE == 0o666 & ~mask
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    kept.chmod(0o640)
    atomic_write_text(kept, "new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o640 and kept.read_text() == "new"
