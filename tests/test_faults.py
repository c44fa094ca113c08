"""Fault injection: damaged files a cluster produces (a job killed while writing, a flaky mirror,
a hand-edited manifest) are refused with the project's error naming the file, nothing is left
half-written or trusted, and a damaged resume point falls back on the previous generation."""

from __future__ import annotations

import http.server
import io
import json
import logging
import shutil
import struct
import subprocess
import sys
import tarfile
import threading
import zipfile

import numpy as np
import pyarrow as pa
import pytest
from conftest import TINY, load_config, snakemake, write_config
from data_helpers import FIXTURES, files_under, make_records, write_tfds

from emcom import agents, checkpoint, config, population, tidy, train
from emcom.data import DataError, download, extract, load_split, read_manifest, synthetic, tfds
from emcom.data.arrow import write_split
from emcom.progress import is_cost

ARCHIVE = (FIXTURES / "byol_celeb_a2.tar.gz").read_bytes()


# ------------------------------------------------------------------------------- checkpoints

CFG = {"game": {"num_candidates": -1, "vocab_size": 5, "message_length": 3},
       "speaker": {"hidden_size": 8}, "listener": {"hidden_size": 8, "proj_dim": 4},
       "training": {"batch_size": 8}}


def flip(path):
    """Flips one byte inside the largest array's data (a flip in a zip header field that the
    central directory repeats would be harmless)."""
    with zipfile.ZipFile(path) as zf:
        info = max(zf.infolist(), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    data[info.header_offset + 30 + name_len + extra_len + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path):
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def empty(path):
    path.write_bytes(b"")


DAMAGE = {"byte-flipped": flip, "truncated": truncate, "empty": empty}


def small_state(step=0):
    cfg = config.resolve(CFG)
    state = population.init_state(cfg, agents.make_speaker(cfg), agents.make_listener(cfg), 6)
    return cfg, state._replace(step=np.asarray(step, np.asarray(state.step).dtype))


def header_npz(path, header):
    np.savez(path, header=np.frombuffer(json.dumps(header).encode(), np.uint8))


@pytest.mark.parametrize("damage", [*DAMAGE, "header-is-a-list", "no-header"])
def test_damaged_checkpoint_is_a_checkpoint_error_naming_it(tmp_path, damage):
    cfg, state = small_state()
    path = checkpoint.save(tmp_path / "best.npz", state, cfg)
    if damage in DAMAGE:
        DAMAGE[damage](path)
    elif damage == "header-is-a-list":
        header_npz(path, [1, 2])
    else:
        np.savez(path, a0=np.zeros(3))
    with pytest.raises(checkpoint.CheckpointError, match="best.npz"):
        checkpoint.load(path)


@pytest.mark.parametrize("damage", DAMAGE)
def test_resume_falls_back_on_the_previous_generation(tmp_path, damage, caplog):
    cfg, state = small_state()
    latest = tmp_path / "latest.npz"
    checkpoint.save(latest, state._replace(step=np.int32(10)), cfg, keep_previous=True)
    checkpoint.save(latest, state._replace(step=np.int32(20)), cfg, keep_previous=True)
    assert checkpoint.load(checkpoint.previous_of(latest)).step == 10
    DAMAGE[damage](latest)
    with caplog.at_level(logging.WARNING, logger="emcom.checkpoint"):
        ckpt = checkpoint.load_resume(latest)
    assert ckpt.step == 10
    assert "latest.npz" in caplog.text and "falling back" in caplog.text
    assert not latest.exists() and (tmp_path / "latest.npz.corrupt").exists()  # never read again
    DAMAGE[damage](checkpoint.previous_of(latest))
    assert checkpoint.load_resume(latest) is None  # nothing usable: training starts afresh


def test_save_removes_temporaries_of_a_killed_writer(tmp_path):
    cfg, state = small_state()
    (tmp_path / ".latest.npz.abc123.npz").write_bytes(b"half a checkpoint")
    checkpoint.save(tmp_path / "latest.npz", state, cfg)
    assert files_under(tmp_path) == ["latest.npz"]


# --------------------------------------------------- training stage: fallback and progress log

def toy(n, d=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


TRAIN_CFG = {"game": {"num_candidates": 8, "vocab_size": 6, "message_length": 3},
             "speaker": {"hidden_size": 8, "embed_dim": 4},
             "listener": {"hidden_size": 8, "embed_dim": 4, "proj_dim": 8},
             "training": {"steps": 30, "batch_size": 16, "steps_per_call": 5, "log_every": 5,
                          "eval_every": 10, "checkpoint_every": 10, "eval_candidates": [4],
                          "eval_batches": 1}}


class Killed(Exception):
    pass


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """(uninterrupted result, folder of a run killed at step 25: latest = 20, previous = 10)."""
    root = tmp_path_factory.mktemp("fallback")
    x, v = toy(96), toy(32, seed=1)
    full = train.train(TRAIN_CFG, x, v, None, root / "full")

    def kill(step, state):
        if step == 25:
            raise Killed

    with pytest.raises(Killed):
        train.train(TRAIN_CFG, x, v, None, root / "cut", callback=kill)
    return full, root / "cut"


def rows_without_timing(rows):
    return [r for r in rows if not is_cost(r["metric"])]


@pytest.mark.parametrize("damage", DAMAGE)
def test_training_resumes_past_a_damaged_latest_and_a_torn_log(tmp_path, interrupted, damage,
                                                               caplog):
    full, cut = interrupted
    out = tmp_path / "out"
    shutil.copytree(cut, out)
    DAMAGE[damage](out / "latest.npz")
    with open(out / "train_progress.jsonl", "a") as f:
        f.write('{"stage": "train", "metric": "kl", "va')  # killed mid-append
    with caplog.at_level(logging.WARNING):
        resumed = train.train(TRAIN_CFG, toy(96), toy(32, seed=1), None, out)
    assert "falling back" in caplog.text and "torn last line" in caplog.text
    assert "train_progress.jsonl" in caplog.text
    assert rows_without_timing(resumed.rows) == rows_without_timing(full.rows)
    for a, b in zip(jax_leaves(full.state), jax_leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
    assert checkpoint.load(out / "latest.npz").step == 30  # the retry made progress


def jax_leaves(state):
    import jax
    return [np.asarray(a) for a in jax.tree_util.tree_leaves(state)]


def test_damage_inside_the_progress_log_names_file_and_line(tmp_path, interrupted):
    out = tmp_path / "out"
    shutil.copytree(interrupted[1], out)
    lines = (out / "train_progress.jsonl").read_text().splitlines()
    lines[1] = "{not json"
    (out / "train_progress.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(checkpoint.CheckpointError, match=r"train_progress.jsonl: line 2"):
        train.train(TRAIN_CFG, toy(96), toy(32, seed=1), None, out)


# ---------------------------------------------------------------------------- Arrow splits

def manifest(folder, d=4, rows=8, splits=("train",)):
    (folder / "manifest.json").write_text(json.dumps(
        {"name": "x", "feature_dim": d, "num_classes": 4, "splits": {s: rows for s in splits}}))


def raw_split(path, columns):
    """An Arrow file of one batch with the given (possibly wrong) columns."""
    batch = pa.RecordBatch.from_pydict(columns)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, batch.schema) as writer:
        writer.write_batch(batch)


def good_columns(n=8, d=4):
    logits = np.ones((n, d), np.float32)
    return {"features": pa.FixedSizeListArray.from_arrays(pa.array(logits.ravel()), d),
            "label": pa.array(np.zeros(n, np.int64)), "image_id": pa.array(np.arange(n))}


def nan_logits(folder):
    logits = np.ones((8, 4), np.float32)
    logits[5, 2] = np.nan
    write_split(folder / "train.arrow", logits, np.zeros(8), np.arange(8))
    manifest(folder)
    return "row 5: NaN"


def other_width(folder):
    write_split(folder / "train.arrow", np.ones((8, 4), np.float32), np.zeros(8), np.arange(8))
    manifest(folder, d=5)
    return "width 4.*'feature_dim' says 5"


def other_rows(folder):
    write_split(folder / "train.arrow", np.ones((8, 4), np.float32), np.zeros(8), np.arange(8))
    manifest(folder, rows=10)
    return "8 rows.*'splits.train' says 10"


def manifest_list(folder):
    write_split(folder / "train.arrow", np.ones((8, 4), np.float32), np.zeros(8), np.arange(8))
    (folder / "manifest.json").write_text("[1, 2]")
    return "manifest.json: expected a JSON object"


def float_labels(folder):
    raw_split(folder / "train.arrow", {**good_columns(), "label": pa.array(np.zeros(8))})
    manifest(folder)
    return "column 'label' is double"


def variable_lists(folder):
    raw_split(folder / "train.arrow", {**good_columns(), "features": pa.array([[1.0]] * 8,
                                                                       pa.list_(pa.float32()))})
    manifest(folder)
    return "column 'features' is list"


def null_rows(folder):
    raw_split(folder / "train.arrow", {**good_columns(), "label": pa.array([0, None] * 4,
                                                                       pa.int64())})
    manifest(folder)
    return "column 'label' has 4 null"


def not_arrow(folder):
    (folder / "train.arrow").write_bytes(b"ARROW1 but not really")
    manifest(folder)
    return "not a readable Arrow IPC file"


@pytest.mark.parametrize("make", [nan_logits, other_width, other_rows, manifest_list,
                                  float_labels, variable_lists, null_rows, not_arrow],
                         ids=lambda f: f.__name__)
def test_split_disagreeing_with_its_manifest_is_refused_before_training_writes(tmp_path, make):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    message = make(data_dir)
    file = "manifest.json" if make is manifest_list else "train.arrow"
    with pytest.raises(DataError, match=rf"{file}.*{message}|{message}"):
        load_split(data_dir, "train")
    with pytest.raises(DataError, match=file):
        train.run(TRAIN_CFG, data_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_finiteness_scan_spans_blocks(tmp_path, monkeypatch):
    from emcom.data import splits
    monkeypatch.setattr(splits, "_SCAN_FLOATS", 12)  # 3 rows of D = 4 per block
    logits = np.ones((10, 4), np.float32)
    logits[7, 0] = np.inf
    write_split(tmp_path / "train.arrow", logits, np.zeros(10), np.arange(10))
    with pytest.raises(DataError, match=r"train.arrow: row 7: NaN or infinite"):
        load_split(tmp_path, "train")
    logits[7, 0] = 3e38  # finite, but a block sum overflows: not an error
    logits[8, 0] = 3e38
    write_split(tmp_path / "test.arrow", logits, np.zeros(10), np.arange(10))
    assert load_split(tmp_path, "test").features[8, 0] == np.float32(3e38)


def test_empty_split_writes_and_synthetic_refuses_knobs_that_empty_one(tmp_path):
    write_split(tmp_path / "valid.arrow", np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0))
    assert load_split(tmp_path, "valid").features.shape == (0, 4)
    with pytest.raises(DataError, match="images_per_identity must be >= 6"):
        synthetic.write(tmp_path / "out", num_identities=10, images_per_identity=5,
                        official_test_identities=2)
    assert files_under(tmp_path / "out") == [] and not (tmp_path / "out").exists()


def test_manifest_with_bad_keys_names_the_key(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"feature_dim": 4, "splits": {"train": "8"}}))
    with pytest.raises(DataError, match=r"manifest.json: key 'splits.train'"):
        read_manifest(tmp_path)


# ------------------------------------------------------------------------------ downloads

class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """`/half`: 200 without Content-Length, closes after half the archive; `/html`: an HTML page
    with status 200 and a correct length."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        if self.path == "/html":
            body = b"<html><body>quota exceeded</body></html>"
            self.send_header("Content-Length", str(len(body)))
        else:
            body = ARCHIVE[:len(ARCHIVE) // 2]
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True


@pytest.fixture
def flaky_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("route, message", [("half", "sent no length"),
                                             ("html", "is not a gzip archive")])
def test_unpinned_download_that_cannot_be_checked_leaves_nothing(tmp_path, flaky_server, route,
                                                                 message):
    dest = tmp_path / "celeba.tar.gz"
    with pytest.raises(DataError, match=rf"{message}.*nothing written|celeba.tar.gz.*{message}"):
        download.fetch(f"{flaky_server}/{route}", dest, retries=0)
    assert files_under(tmp_path) == []
    cli = subprocess.run([sys.executable, "-m", "emcom.data", "-q", "download",
                          f"{flaky_server}/{route}", str(dest)], capture_output=True, text=True)
    assert cli.returncode == 1 and "celeba.tar.gz" in cli.stderr and message in cli.stderr
    assert files_under(tmp_path) == []


def test_exhausted_retries_say_whether_partial_data_was_kept(tmp_path):
    with pytest.raises(DataError, match="no partial data kept"):
        download.fetch("http://127.0.0.1:9/a.tar.gz", tmp_path / "a.tar.gz", retries=0)
    assert files_under(tmp_path) == []


def test_damaged_checksum_file_names_it(tmp_path):
    (tmp_path / "a.tar.gz.sha256").write_text("")
    with pytest.raises(DataError, match="a.tar.gz.sha256: unreadable"):
        download.read_checksum(tmp_path / "a.tar.gz.sha256")


# --------------------------------------------------------------- extraction and staging

def tar_of(path, members):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("limits, message", [({"max_members": 2}, "more than 2 members"),
                                             ({"max_bytes": 15}, "over 15 bytes")])
def test_extraction_limits(tmp_path, limits, message):
    archive = tar_of(tmp_path / "a.tar.gz", {f"f{i}": b"0123456789" for i in range(3)})
    with pytest.raises(DataError, match=rf"a.tar.gz: .*{message}"):
        extract.extract(archive, tmp_path / "out", **limits)
    assert files_under(tmp_path) == ["a.tar.gz"]


def test_staging_of_a_killed_conversion_is_removed_by_the_next(tmp_path):
    src = write_tfds(tmp_path / "src", {"train": [make_records(4)]})
    for name in ("syn", "conv"):
        stale = tmp_path / f".{name}.staging-dead1234" / "out"
        stale.mkdir(parents=True)
        (stale / "train.arrow").write_bytes(b"x" * 100)
    synthetic.write(tmp_path / "syn", num_identities=10, images_per_identity=6, feature_dim=4,
                    hidden_dim=4, official_test_identities=2)
    tfds.convert(src, tmp_path / "conv")
    assert not list(tmp_path.glob(".*"))


# ---------------------------------------------------------------------- tables and config

def test_damaged_parquet_table_is_a_tidy_error_naming_it(tmp_path):
    (tmp_path / "eval.parquet").write_bytes(b"PAR1 torn")
    with pytest.raises(tidy.TidyError, match="eval.parquet"):
        tidy.read_tables([tmp_path / "eval.parquet"])


# The schema states every key, so it stops these at start, naming the key and its path.
@pytest.mark.parametrize("edit, messages", [
    (lambda c: c["datasets"]["tiny"]["params"].update(num_identites=3),
     ["('num_identites' was unexpected)", "On instance['datasets']['tiny']['params']:"]),
    (lambda c: c["datasets"]["tiny"]["params"].update(noise_scale="high"),
     ["'high' is not of type 'number'",
      "On instance['datasets']['tiny']['params']['noise_scale']:"]),
    (lambda c: c.update(train_per_dataset={"tiny": {"training": {"stesp": 3}}}),
     ["('stesp' was unexpected)", "On instance['train_per_dataset']['tiny']['training']:"]),
], ids=["params-typo", "params-type", "per-dataset-typo"])
def test_config_errors_at_dag_build_name_the_key_path(tmp_path, edit, messages):
    cfg = load_config(TINY)
    edit(cfg)
    proc = snakemake(tmp_path, "--dry-run", config=write_config(tmp_path / "bad.yaml", cfg),
                     check=False)
    assert proc.returncode != 0
    for message in messages:
        assert message in proc.stdout + proc.stderr
