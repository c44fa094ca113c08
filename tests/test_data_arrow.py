"""The Arrow split format: round trip, zero-copy memory-mapped loading, determinism."""

import json
import os

import numpy as np
import pyarrow as pa
import pytest

from emcom.data import DataError, load_split, read_manifest
from emcom.data.arrow import SplitWriter, write_split


def _rows(n, d=6, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((n, d), dtype=np.float32), rng.integers(0, 9, n), np.arange(n) + 100,
            rng.integers(0, 2, (n, 3)).astype(np.uint8), rng.integers(0, 200, (n, 2)))


def test_round_trip_with_attributes_and_landmarks(tmp_path):
    logits, labels, ids, attrs, marks = _rows(10)
    with SplitWriter(tmp_path / "train.arrow", 6, ["a", "b", "c"], ["x", "y"]) as w:
        w.append(logits[:4], labels[:4], ids[:4], attrs[:4], marks[:4])
        w.append(logits[4:], labels[4:], ids[4:], attrs[4:], marks[4:])
    s = load_split(tmp_path, "train")
    assert s.features.dtype == np.float32 and s.features.shape == (10, 6)
    np.testing.assert_array_equal(s.features, logits)
    np.testing.assert_array_equal(s.labels, labels)
    np.testing.assert_array_equal(s.image_ids, ids)
    np.testing.assert_array_equal(s.attributes, attrs)
    np.testing.assert_array_equal(s.landmarks, marks)
    assert s.attribute_names == ["a", "b", "c"] and s.landmark_names == ["x", "y"]
    assert len(s) == 10
    schema = pa.ipc.open_file(str(tmp_path / "train.arrow")).schema
    assert schema.field("features").type == pa.list_(pa.float32(), 6)
    assert schema.field("attributes").type == pa.list_(pa.uint8(), 3)
    assert schema.field("landmarks").type == pa.list_(pa.int64(), 2)
    assert json.loads(schema.metadata[b"attribute_names"]) == ["a", "b", "c"]
    assert [f for f in os.listdir(tmp_path)] == ["train.arrow"]  # spools removed


def test_optional_columns_absent(tmp_path):
    logits, labels, ids, _, _ = _rows(5)
    write_split(tmp_path / "valid.arrow", logits, labels, ids)
    s = load_split(tmp_path, "valid")
    assert s.attributes is None and s.attribute_names is None and s.landmarks is None


def test_load_is_zero_copy_over_the_memory_map(tmp_path):
    # 32 MB of logits; reading one row must not pull the file into the process's memory.
    n, d = 4096, 2048
    logits = np.ones((n, d), np.float32)
    logits[-1, -1] = 7.0
    write_split(tmp_path / "train.arrow", logits, np.zeros(n, np.int64), np.arange(n))
    del logits
    s = load_split(tmp_path, "train")
    assert not s.features.flags.owndata and not s.features.flags.writeable
    # The array's memory lies in a mapping of the file itself (not a copy on the heap).
    assert _mapped_file(s.features.ctypes.data) == str((tmp_path / "train.arrow").resolve())
    assert _mapped_file(s.labels.ctypes.data) == str((tmp_path / "train.arrow").resolve())
    assert s.features[-1, -1] == 7.0
    rss_before = _rss_bytes()
    for _ in range(3):
        s2 = load_split(tmp_path, "train")
        assert s2.features.shape == (n, d) and s2.features[0, 0] == 1.0
    assert _rss_bytes() - rss_before < 8 * 2**20  # loading 3 x 32 MB costs well under 8 MB


def _mapped_file(address):
    """The file backing the memory mapping that contains `address` (from /proc/self/maps)."""
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            lo, hi = (int(x, 16) for x in fields[0].split("-"))
            if lo <= address < hi:
                return fields[5] if len(fields) > 5 else None
    return None


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_same_rows_give_byte_identical_files(tmp_path):
    rows = _rows(50)
    a = write_split(tmp_path / "a.arrow", rows[0], rows[1], rows[2], rows[3], ["p", "q", "r"])
    b = write_split(tmp_path / "b.arrow", rows[0], rows[1], rows[2], rows[3], ["p", "q", "r"])
    assert a.read_bytes() == b.read_bytes()


def test_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="test.arrow: no such split"):
        load_split(tmp_path, "test")
    (tmp_path / "bad.arrow").write_bytes(b"not arrow")
    with pytest.raises(DataError, match="bad.arrow: not a readable Arrow"):
        load_split(tmp_path, "bad")
    with pytest.raises(DataError, match="manifest.json: no manifest"):
        read_manifest(tmp_path)
    logits, labels, ids, _, _ = _rows(4)
    with pytest.raises(DataError, match="column 'features' has shape"):
        with SplitWriter(tmp_path / "x.arrow", 5) as w:
            w.append(logits, labels, ids)
    assert not (tmp_path / "x.arrow").exists()
    assert sorted(os.listdir(tmp_path)) == ["bad.arrow"]


def test_multi_batch_file_is_refused(tmp_path):
    logits, labels, ids, _, _ = _rows(4)
    table = pa.table({"features": pa.FixedSizeListArray.from_arrays(pa.array(logits.ravel()), 6),
                      "label": labels, "image_id": ids})
    with pa.ipc.new_file(str(tmp_path / "train.arrow"), table.schema) as w:
        w.write_table(table, max_chunksize=2)
    with pytest.raises(DataError, match="exactly one record batch"):
        load_split(tmp_path, "train")
