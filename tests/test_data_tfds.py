"""TFDS shards to Arrow without TensorFlow: exact fixture values, layouts, and every bad input."""

import gzip
import io
import json
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from data_helpers import DATASETS, FIXTURES, files_under, make_records, write_tfds
from emcom.data import DataError, load_split, read_manifest
from emcom.data.example import encode_example, parse_example
from emcom.data.extract import extract
from emcom.data.tfds import convert


def _check_expected(out, name):
    expected = json.loads((FIXTURES / f"{name}.expected.json").read_text())
    manifest = read_manifest(out)
    assert manifest["feature_dim"] == expected["logit_dim"]
    assert manifest["num_classes"] == expected["num_classes"]
    assert manifest["attribute_names"] == expected.get("attribute_names")
    assert manifest["landmark_names"] == expected.get("landmark_names")
    assert manifest["splits"] == {s: e["num_examples"] for s, e in expected["splits"].items()}
    for split, exp in expected["splits"].items():
        s = load_split(out, split)
        assert s.image_ids.tolist() == [i for f in exp["image_ids_in_file_order"] for i in f]
        assert s.attribute_names == expected.get("attribute_names")
        assert s.landmark_names == expected.get("landmark_names")
        for row, image_id in enumerate(s.image_ids.tolist()):
            e = exp["examples"][str(image_id)]
            assert s.labels[row] == e["label"]
            want = np.array(e["logit"], np.float64).astype(np.float32)
            assert want.view(np.uint32).tolist() == s.features[row].view(np.uint32).tolist()
            if "attributes" in e:
                assert s.attributes[row].tolist() == [int(a) for a in e["attributes"]]
                assert s.landmarks[row].tolist() == e["landmarks"]


@pytest.mark.parametrize("name", DATASETS)
def test_fixture_archive_values_come_out_exactly(tmp_path, name):
    manifest = convert(FIXTURES / f"{name}.tar.gz", tmp_path / name)
    _check_expected(tmp_path / name, name)
    sums = dict(line.split()[::-1] for line in (FIXTURES / "SHA256SUMS").read_text().splitlines())
    assert manifest["source"]["sha256"] == sums[f"{name}.tar.gz"]
    assert manifest["versions"]["pyarrow"]
    assert (tmp_path / name / "manifest.json.provenance.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == [name]  # staging removed


def test_extracted_folder_without_dataset_info_and_cli(tmp_path):
    extract(FIXTURES / "byol_celeb_a2.tar.gz", tmp_path / "src")
    assert not list((tmp_path / "src").rglob("dataset_info.json"))
    result = subprocess.run([sys.executable, "-m", "emcom.data", "-q", "tfds-to-arrow",
                             str(tmp_path / "src"), str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"train": 60, "valid": 20, "test": 20}
    _check_expected(tmp_path / "out", "byol_celeb_a2")
    assert read_manifest(tmp_path / "out")["source"]["sha256"] is None  # a folder has none


def test_split_selection(tmp_path):
    convert(FIXTURES / "byol_imagenet2012.tar.gz", tmp_path / "out", splits=["train", "test"])
    assert sorted(p.name for p in (tmp_path / "out").glob("*.arrow")) == ["test.arrow", "train.arrow"]
    with pytest.raises(DataError, match=r"split\(s\) \['test_official'\] not found"):
        convert(FIXTURES / "byol_celeb_a2.tar.gz", tmp_path / "c", splits=["train", "test_official"])
    assert files_under(tmp_path / "c") == []


def test_parser_is_order_independent_and_round_trips():
    record = {"label": [3], "logit": np.array([0.5, -1.25, np.float32(1e-30)], np.float32),
              "image_id": [-7], "attributes/B": [1], "attributes/A": [0]}
    parsed = parse_example(encode_example(record))
    assert parsed["logit"].dtype == np.float32 and parsed["logit"].tolist() == record["logit"].tolist()
    assert parsed["image_id"].tolist() == [-7] and parsed["label"].tolist() == [3]
    assert set(parsed) == set(record)
    with pytest.raises(DataError, match="malformed"):
        parse_example(b"\x0a\xff\xff")


def test_no_features_json_uses_first_record_and_sorts_unknown_attribute_names(tmp_path):
    recs = make_records(6, dim=3)
    for i, r in enumerate(recs):
        r["attributes/zeta"], r["attributes/alpha"] = [i % 2], [1]
    write_tfds(tmp_path / "src", {"train": [recs[:3], recs[3:]]})
    m = convert(tmp_path / "src", tmp_path / "out")
    assert m["feature_dim"] == 3 and m["num_classes"] == max(r["label"][0] for r in recs) + 1
    s = load_split(tmp_path / "out", "train")
    assert s.attribute_names == ["alpha", "zeta"]
    assert s.attributes[:, 1].tolist() == [i % 2 for i in range(6)]


def test_missing_image_id_uses_row_index(tmp_path):
    recs = make_records(5)
    for r in recs:
        del r["image_id"]
    write_tfds(tmp_path / "src", {"train": [recs]})
    m = convert(tmp_path / "src", tmp_path / "out")
    assert load_split(tmp_path / "out", "train").image_ids.tolist() == [0, 1, 2, 3, 4]
    assert m["image_ids"].startswith("row index")


def _features_json(dim, num_classes, old=False):
    if old:
        tensor = {"type": "tensorflow_datasets.core.features.tensor_feature.Tensor",
                  "content": {"shape": [dim], "dtype": "float32"}}
        label = {"type": "tensorflow_datasets.core.features.class_label_feature.ClassLabel",
                 "content": {"num_classes": num_classes}}
        scalar = {"type": "tensorflow_datasets.core.features.tensor_feature.Tensor",
                  "content": {"shape": [], "dtype": "int64"}}
        return {"type": "tensorflow_datasets.core.features.features_dict.FeaturesDict",
                "content": {"logit": tensor, "label": label, "image_id": scalar}}
    return {"featuresDict": {"features": {
        "logit": {"tensor": {"dtype": "float32", "shape": {"dimensions": [str(dim)]}}},
        "label": {"classLabel": {"numClasses": str(num_classes)}},
        "image_id": {"tensor": {"dtype": "int64", "shape": {}}}}}}


@pytest.mark.parametrize("old", [False, True])
def test_features_json_layouts_are_cross_checked(tmp_path, old):
    src = write_tfds(tmp_path / "src", {"train": [make_records(4, dim=4)]})
    (src / "features.json").write_text(json.dumps(_features_json(4, 7, old)))
    assert convert(src, tmp_path / "ok")["num_classes"] == 7
    (src / "features.json").write_text(json.dumps(_features_json(5, 7, old)))
    with pytest.raises(DataError, match=r"toy-train.tfrecord-00000-of-00001: record 0: 'logit' has 4"):
        convert(src, tmp_path / "bad")
    assert files_under(tmp_path / "bad") == []
    (src / "features.json").write_text(json.dumps(_features_json(4, 2, old)))
    with pytest.raises(DataError, match=r"record \d+: label \d outside \[0, 2\)"):
        convert(src, tmp_path / "bad")
    assert files_under(tmp_path / "bad") == []


# --- bad input: a clear error naming file (and record), and nothing left in OUT -------------------

def _good(tmp_path):
    return write_tfds(tmp_path / "src" / "toy" / "1.0.0",
                      {"train": [make_records(4), make_records(4, seed=1, start_id=4)],
                       "test": [make_records(3, seed=2, start_id=8)]})


def _assert_fails(tmp_path, src, pattern):
    out = tmp_path / "out"
    out.mkdir()  # as Snakemake does before a job
    with pytest.raises(DataError, match=pattern):
        convert(src, out)
    assert files_under(out) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging
    result = subprocess.run([sys.executable, "-m", "emcom.data", "-q", "tfds-to-arrow", str(src),
                             str(out)], capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("error: ")
    assert files_under(out) == []


def test_truncated_shard(tmp_path):
    src = _good(tmp_path)
    shard = src / "toy-train.tfrecord-00001-of-00002"
    shard.write_bytes(shard.read_bytes()[:-7])
    _assert_fails(tmp_path, src, r"toy-train.tfrecord-00001-of-00002: record 3 .*truncated record")


def test_truncated_archive(tmp_path):
    data = (FIXTURES / "byol_imagenet2012.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(data[:len(data) // 2])
    _assert_fails(tmp_path, tmp_path / "cut.tar.gz", r"cut.tar.gz: truncated or corrupt archive")


@pytest.mark.parametrize("where,pattern", [(3, "length CRC mismatch"), (20, "payload CRC mismatch")])
def test_crc_mismatch(tmp_path, where, pattern):
    src = _good(tmp_path)
    shard = src / "toy-test.tfrecord-00000-of-00001"
    data = bytearray(shard.read_bytes())
    record_size = len(data) // 3
    data[record_size + where] ^= 0x01  # corrupt record 1
    shard.write_bytes(bytes(data))
    _assert_fails(tmp_path, src, rf"toy-test.tfrecord-00000-of-00001: record 1 .*{pattern}")


def test_missing_shard(tmp_path):
    src = _good(tmp_path)
    (src / "toy-train.tfrecord-00000-of-00002").unlink()
    _assert_fails(tmp_path, src, r"split 'train': 1 of 2 shards missing, e.g. "
                                 r"toy-train.tfrecord-00000-of-00002")


@pytest.mark.parametrize("change,pattern", [
    (lambda r: r.pop("label"), r"record 2: missing key\(s\) \['label'\]"),
    (lambda r: r.update(colour=[1]), r"record 2: unknown key\(s\) \['colour'\]"),
    (lambda r: r.update(logit=np.zeros(5, np.float32)), r"record 2: 'logit' has 5 float32 values, expected 4"),
    (lambda r: r["logit"].__setitem__(1, np.nan), r"record 2: NaN or infinite value in 'logit'"),
    (lambda r: r["logit"].__setitem__(0, -np.inf), r"record 2: NaN or infinite value in 'logit'"),
])
def test_bad_record(tmp_path, change, pattern):
    recs = make_records(4, seed=1, start_id=4)
    change(recs[2])
    src = write_tfds(tmp_path / "src", {"train": [make_records(4), recs]})
    _assert_fails(tmp_path, src, r"toy-train.tfrecord-00001-of-00002: " + pattern)


def test_unknown_key_in_first_record_and_missing_logit(tmp_path):
    recs = make_records(2)
    recs[0]["extra"] = [1]
    recs[1]["extra"] = [1]
    _assert_fails(tmp_path, write_tfds(tmp_path / "a", {"train": [recs]}),
                  r"record 0: unknown key\(s\) \['extra'\]")
    recs = [{k: v for k, v in r.items() if k != "logit"} for r in make_records(2)]
    shutil.rmtree(tmp_path / "out")
    _assert_fails(tmp_path, write_tfds(tmp_path / "b", {"train": [recs]}),
                  r"record 0: required key 'logit' missing")


def test_unsafe_archive_member(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    _assert_fails(tmp_path, archive, r"evil.tar.gz: unsafe member '../escape.txt'")
    assert not (tmp_path.parent / "escape.txt").exists()


def test_corrupt_gzip_is_a_clear_error(tmp_path):
    (tmp_path / "junk.tar.gz").write_bytes(gzip.compress(b"not a tar file at all" * 10))
    _assert_fails(tmp_path, tmp_path / "junk.tar.gz", r"junk.tar.gz: truncated or corrupt archive")
