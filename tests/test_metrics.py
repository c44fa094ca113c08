"""Distances and language metrics (`emcom.distances`, `emcom.metrics`): vectorised edit distances
and TopSim against editdistance/scipy references."""

import itertools
import json

import editdistance
import numpy as np
import pytest
import scipy.spatial.distance
import scipy.stats

from emcom import distances, language, metrics
from emcom.bench import topsim as bench_topsim


def _reference_distances(messages):
    rows = messages.tolist()
    return np.array([editdistance.eval(a, b) for a, b in itertools.combinations(rows, 2)],
                    dtype=float) / messages.shape[1]


def test_edit_distances_equal_editdistance_on_random_messages():
    rng = np.random.default_rng(0)
    messages = rng.integers(0, 4, size=(60, 7))  # small vocabulary: many partial matches
    np.testing.assert_array_equal(distances.edit_distances(messages),
                                  _reference_distances(messages))


def test_edit_distances_are_levenshtein_not_hamming_on_shifted_messages():
    rng = np.random.default_rng(1)
    base = rng.integers(0, 20, size=(30, 12))
    shifted = np.concatenate([base[:, 1:], rng.integers(0, 20, size=(30, 1))], axis=1)
    inserted = np.concatenate([rng.integers(0, 20, size=(30, 1)), base[:, :-1]], axis=1)
    messages = np.concatenate([base, shifted, inserted])
    got = distances.edit_distances(messages, normalise=False).astype(int)
    want = _reference_distances(messages) * messages.shape[1]
    np.testing.assert_array_equal(got, want)
    hamming = scipy.spatial.distance.pdist(messages, "hamming") * messages.shape[1]
    assert np.all(got <= hamming) and np.sum(got < hamming) > 30  # shifts cost 2, not ~12


def test_levenshtein_handles_blocks_and_different_lengths(monkeypatch):
    monkeypatch.setattr(distances, "_PAIR_BLOCK", 7)  # several blocks, a ragged last one
    block, sizes = distances._levenshtein_block, []
    monkeypatch.setattr(distances, "_levenshtein_block",
                        lambda x, y: sizes.append(len(x)) or block(x, y))
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 3, size=(50, 5)), rng.integers(0, 3, size=(50, 8))
    want = [editdistance.eval(x, y) for x, y in zip(a.tolist(), b.tolist())]
    np.testing.assert_array_equal(distances.levenshtein(a, b), want)
    assert sizes == [7] * 7 + [1]
    np.testing.assert_array_equal(distances.edit_distances(a), _reference_distances(a))


def test_meaning_distances_match_pdist_cosine_and_attribute_mean(monkeypatch):
    monkeypatch.setattr(distances, "_ROW_BLOCK_ELEMENTS", 50)  # several row blocks
    assert len(list(distances.pair_blocks(40))) == 39
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 6))
    np.testing.assert_allclose(distances.meaning_distances(x),
                               scipy.spatial.distance.pdist(x, "cosine"), atol=1e-6)
    codes = rng.integers(0, 3, size=(40, 4))
    onehots = distances.one_hot_attributes(codes, ["a", "b", "c", "d"])
    assert onehots["a"].shape == (40, 3)
    want = np.mean([scipy.spatial.distance.pdist(codes[:, [k]], lambda u, v: float(u[0] != v[0]))
                    for k in range(4)], axis=0)
    np.testing.assert_allclose(distances.meaning_distances(onehots), want, atol=1e-7)


def test_topsim_equals_scipy_spearman():
    messages, meanings = bench_topsim.toy_language(120, 6, 5, 16, seed=4)
    want = scipy.stats.spearmanr(_reference_distances(messages),
                                 scipy.spatial.distance.pdist(meanings.astype(float), "cosine"))
    got = metrics.topographic_similarity(messages, meanings)
    assert got == pytest.approx(want.statistic, abs=1e-7)
    assert got > 0.05


def test_topsim_tiny_case_by_hand():
    messages = np.array([[0, 0], [0, 1], [1, 1]])  # pairs (0,1), (0,2), (1,2): edits 1, 2, 1
    np.testing.assert_array_equal(distances.edit_distances(messages, normalise=False), [1, 2, 1])
    # Cosine distances 1, 1 - 1/sqrt(2), 1 - 1/sqrt(2). Centred mean ranks: edits (-1/2, 1, -1/2),
    # meanings (1, -1/2, -1/2); Pearson (-1/2 - 1/2 + 1/4) / (3/2) = -1/2.
    meanings = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    assert metrics.topographic_similarity(messages, meanings) == pytest.approx(-0.5, abs=1e-12)
    assert metrics.topographic_similarity(messages, meanings[[0, 2, 1]]) == pytest.approx(1.0)


def _ties_and_duplicates(rng, num):
    """Messages over 3 words (many tied edit distances), a third of them copies; meanings with
    repeated rows (zero distances, clipped from rounding) and ties of a few distinct values."""
    messages = rng.integers(0, 3, size=(num, 5))
    messages[num // 3:2 * num // 3] = messages[:num // 3]
    images = rng.normal(size=(num, 6)).astype(np.float32)
    images[::4] = images[1::4]
    images[2::7] = images[0]
    attributes = distances.one_hot_attributes(rng.integers(0, 2, size=(num, 4)))
    return messages, images, attributes


@pytest.mark.parametrize("blocks", [False, True])
def test_topsim_equals_editdistance_and_spearmanr_with_ties(monkeypatch, blocks):
    rng = np.random.default_rng(9)
    messages, images, attributes = _ties_and_duplicates(rng, 150)
    if blocks:  # several row blocks, meaning-distance windows and chunks with open tie groups
        monkeypatch.setattr(distances, "_ROW_BLOCK_ELEMENTS", 300)
        assert len(list(distances.pair_blocks(150))) == 75
        monkeypatch.setattr(metrics, "_WINDOW_PAIRS", 1000)
        monkeypatch.setattr(metrics, "_CHUNK", 50)
        assert len(metrics._windows(*distances.unit_meanings(images, 150))) > 5
        np.testing.assert_array_equal(distances.edit_distances(messages),
                                      _reference_distances(messages))
    for meanings in (images, attributes):
        want = scipy.stats.spearmanr(_reference_distances(messages),
                                     distances.meaning_distances(meanings)).statistic
        assert metrics.topographic_similarity(messages, meanings) == pytest.approx(want, abs=1e-12)
    both = metrics.topographic_similarities(np.stack([messages, messages[::-1]]), images)
    want = scipy.stats.spearmanr(_reference_distances(messages[::-1]),
                                 distances.meaning_distances(images)).statistic
    assert both[1] == pytest.approx(want, abs=1e-12)


def test_structured_language_scores_higher_than_shuffled():
    rng = np.random.default_rng(5)
    codes = rng.integers(0, 4, size=(200, 3))  # 3 attributes of 4 values
    messages = codes + 4 * np.arange(3)  # word t names attribute t, each with its own words
    shuffled = messages[rng.permutation(len(messages))]
    attributes = distances.one_hot_attributes(codes)
    structured = metrics.topographic_similarity(messages, attributes)
    assert structured == pytest.approx(1.0)  # both distances count the differing attributes
    assert abs(metrics.topographic_similarity(shuffled, attributes)) < 0.1
    # Same ordering with the meanings as plain vectors (the "image" meaning space).
    images = np.concatenate(list(attributes.values()), axis=1) + 0.01 * rng.normal(size=(200, 12))

    assert (metrics.topographic_similarity(messages, images)
            > metrics.topographic_similarity(shuffled, images) + 0.5)


def test_topsim_of_several_speakers_shares_the_meanings():
    messages, meanings = bench_topsim.toy_language(80, 6, 5, 8, seed=8)
    shuffled = messages[np.random.default_rng(0).permutation(80)]
    both = metrics.topographic_similarities(np.stack([messages, shuffled]), meanings)
    assert both[0] == metrics.topographic_similarity(messages, meanings)
    assert both[1] == metrics.topographic_similarity(shuffled, meanings)
    assert both[0] > both[1]


def test_topsim_subsampling_is_reproducible():
    messages, meanings = bench_topsim.toy_language(200, 6, 5, 8, seed=6)
    a = metrics.topographic_similarity(messages, meanings, max_messages=50, rng=1)
    b = metrics.topographic_similarity(messages, meanings, max_messages=50, rng=1)
    c = metrics.topographic_similarity(messages, meanings, max_messages=50, rng=2)
    assert a == b and a != c


def test_topsim_bad_input_errors():
    with pytest.raises(ValueError, match="integer"):
        metrics.topographic_similarity(np.zeros((5, 3)), np.ones((5, 2)))
    with pytest.raises(ValueError, match=r"shape \(5, F\)"):
        metrics.topographic_similarity(np.zeros((5, 3), int), np.ones((4, 2)))
    with pytest.raises(ValueError, match="all-zero"):
        metrics.topographic_similarity(np.zeros((5, 3), int), np.zeros((5, 2)))
    assert np.isnan(metrics.topographic_similarity(np.zeros((5, 3), int),
                                                   np.random.default_rng(0).normal(size=(5, 2))))


def test_speaker_edit_distance():
    rng = np.random.default_rng(7)
    one = rng.integers(0, 20, size=(50, 10))
    assert metrics.speaker_edit_distance(np.stack([one, one, one])) == 0.0
    other = rng.integers(0, 20, size=(50, 10))
    three = np.stack([one, one, other])
    pair = np.mean([editdistance.eval(a, b) for a, b in zip(one.tolist(), other.tolist())]) / 10
    # Pairs (0,1)=0, (0,2)=pair, (1,2)=pair.
    assert metrics.speaker_edit_distance(three) == pytest.approx(2 * pair / 3)
    with pytest.raises(ValueError, match="2 speakers"):
        metrics.speaker_edit_distance(one[None])


def test_bench_prints_both_timings_as_json(capsys):
    assert bench_topsim.main(["--messages", "60", "--dim", "8", "--repeats", "1",
                              "--memory-messages", "40"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["pairs"] == 60 * 59 // 2
    assert result["topsim_s"] > 0 and result["baseline_s"] > 0
    ratio = result["baseline_s"] / result["topsim_s"]
    assert result["speedup"] == pytest.approx(ratio, rel=0.05)
    assert result["abs_diff"] < 1e-6
    assert result["memory_pairs"] == 40 * 39 // 2 and result["memory_peak_traced_mib"] > 0
    assert {"other_cpu_s", "load_average_1min_before", "load_average_1min_after"} <= set(result)


def test_language_stage_rows(tmp_path):
    from emcom import agents, checkpoint, data, evaluate
    from test_evaluate import tiny_checkpoint, tiny_dataset

    ckpt = checkpoint.load(tiny_checkpoint(tmp_path / "best.npz"))
    data_dir = tiny_dataset(tmp_path)
    df = language.run({"max_agents": 2}, ckpt, data_dir)
    assert set(df.stage) == {"language"} and set(df.split) == {"test"}
    assert set(df.metric) == {"topsim_image", "topsim_attributes", "edit_distance_speakers"}
    image = df[df.metric == "topsim_image"].set_index("speaker").value
    assert sorted(image.index) == [-1, 0, 1]
    assert image[-1] == pytest.approx((image[0] + image[1]) / 2)
    # The rows are the library functions applied to the speakers' greedy test messages.
    split = data.load_split(data_dir, "test")
    messages = evaluate.speaker_messages(agents.make_speaker(ckpt.config),
                                         evaluate.first_agents(ckpt.speakers, 2), split.features)
    assert image[1] == pytest.approx(metrics.topographic_similarity(messages[1], split.features))
    attributes = df[(df.metric == "topsim_attributes") & (df.speaker == 0)].value.item()
    assert attributes == pytest.approx(metrics.topographic_similarity(
        messages[0], distances.one_hot_attributes(split.attributes)))
    assert df[df.metric == "edit_distance_speakers"].value.item() == pytest.approx(
        metrics.speaker_edit_distance(messages))
    # Subsampling: reproducible with the stage seed.
    sub = language.run({"max_agents": 1, "max_messages": 20}, ckpt, data_dir)
    assert set(sub.metric) == {"topsim_image", "topsim_attributes"}  # one speaker: no distance
    again = language.run({"max_agents": 1, "max_messages": 20}, ckpt, data_dir)
    np.testing.assert_array_equal(sub.value.to_numpy(), again.value.to_numpy())
    with pytest.raises(ValueError, match="language.max_message"):
        language.run({"max_message": 20}, ckpt, data_dir)


def test_language_stage_without_attributes(tmp_path):
    from test_evaluate import tiny_checkpoint, tiny_dataset

    df = language.run({}, tiny_checkpoint(tmp_path / "best.npz"), tiny_dataset(tmp_path, attributes=False))
    assert set(df.metric) == {"topsim_image", "edit_distance_speakers"}
    assert len(df[df.metric == "topsim_image"]) == 4  # 3 speakers + their mean
