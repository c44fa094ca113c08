"""Checkpoints: exact round trip, no pickle, atomic, refusal of mismatched files."""

import json

import jax
import numpy as np
import pytest

from emcom import agents, checkpoint, config, population

CFG = {"game": {"num_candidates": -1, "vocab_size": 5, "message_length": 3},
       "speaker": {"hidden_size": 8}, "listener": {"hidden_size": 8, "proj_dim": 4},
       "population": {"num_speakers": 3, "num_listeners": 2}, "training": {"batch_size": 8}}


def state_of(cfg):
    return population.init_state(cfg, agents.make_speaker(cfg), agents.make_listener(cfg), 6)


def test_round_trip_is_exact(tmp_path):
    cfg = config.resolve(CFG)
    state = state_of(cfg)._replace(scores=np.array([0.1, 0.5, 0.25], np.float32))
    checkpoint.save(tmp_path / "c.npz", state, cfg, {"best_valid_loss": 1.5})
    c = checkpoint.load(tmp_path / "c.npz")
    assert c.config == cfg and c.step == 0 and c.feature_dim == 6 and c.meta["best_valid_loss"] == 1.5
    assert jax.tree_util.tree_structure(c.state) == jax.tree_util.tree_structure(state)
    for a, b in zip(jax.tree_util.tree_leaves(state), jax.tree_util.tree_leaves(c.state)):
        np.testing.assert_array_equal(np.asarray(a), b)
    assert c.speakers["speaker/~/adapter"]["w"].shape == (3, 6, 16)
    assert c.listeners["candidate_proj"]["w"].shape == (2, 6, 4)
    # Plain arrays only: readable without pickle, header is JSON.
    with np.load(tmp_path / "c.npz", allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
        assert json.loads(bytes(z["header"]))["format"] == checkpoint.FORMAT


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    cfg = config.resolve(CFG)
    state = state_of(cfg)
    path = checkpoint.save(tmp_path / "c.npz", state, cfg, {"n": 1})
    before = path.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError):
        checkpoint.save(path, state, cfg, {"n": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]  # no temporary left behind


def test_mismatched_or_corrupt_files_are_refused(tmp_path):
    cfg = config.resolve(CFG)
    path = checkpoint.save(tmp_path / "c.npz", state_of(cfg), cfg)
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    header = json.loads(bytes(arrays["header"]))
    header["config"]["population"]["num_speakers"] = 4
    arrays["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(checkpoint.CheckpointError, match="bad.npz"):
        checkpoint.load(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(checkpoint.CheckpointError, match="junk.npz"):
        checkpoint.load(tmp_path / "junk.npz")
    with pytest.raises(checkpoint.CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.npz")


def test_a_checkpoint_of_another_emcom_version_stops_a_resume_untouched(tmp_path, monkeypatch):
    """Not damage: the resume neither renames it aside nor silently starts from step 0."""
    cfg = config.resolve(CFG)
    path = tmp_path / "latest.npz"
    monkeypatch.setattr(checkpoint, "FORMAT", checkpoint.FORMAT - 1)
    checkpoint.save(path, state_of(cfg), cfg)
    monkeypatch.undo()
    with pytest.raises(checkpoint.CheckpointVersionError, match="another version of emcom"):
        checkpoint.load_resume(path)
    assert path.exists() and not list(tmp_path.glob("*.corrupt"))
