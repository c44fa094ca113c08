"""The tidy long-format table: schema, validation errors, Parquet + CSV + provenance round trip."""

import json

import numpy as np
import pandas as pd
import pytest

from emcom import tidy


def _table():
    rows = tidy.make_rows("accuracy", np.array([[0.5, 0.25], [0.75, 1.0]]),
                          axes=("speaker", "listener"), coords=([0, 1], [0, 1]),
                          stage="eval", split="test", candidates=16, eval_dataset="synth")
    rows.append(tidy.row(stage="eval", split="test", metric="accuracy_vote", value=0.9))
    return tidy.frame(rows)


def test_make_rows_labels_every_element_by_its_axes():
    df = _table()
    assert list(df.columns) == list(tidy.COLUMNS)
    assert len(df) == 5
    cell = df[(df.speaker == 1) & (df.listener == 0)]
    assert cell.value.item() == 0.75
    vote = df[df.metric == "accuracy_vote"]
    # Unset columns take the documented defaults.
    assert vote.speaker.item() == -1 and vote.candidates.item() == -1 and vote.step.item() == -1


def test_make_rows_rejects_mismatched_coordinates():
    with pytest.raises(tidy.TidyError, match="speaker"):
        tidy.make_rows("accuracy", np.zeros((2, 3)), axes=("speaker", "listener"),
                       coords=([0, 1, 2], [0, 1, 2]), stage="eval", split="test")


def test_row_rejects_unknown_column():
    with pytest.raises(tidy.TidyError, match="acuracy"):
        tidy.row(stage="eval", split="test", metric="m", value=1.0, acuracy=1)


def test_validate_names_missing_and_extra_columns():
    df = _table().drop(columns=["step"]).assign(extra=1)
    with pytest.raises(tidy.TidyError, match=r"missing \['step'\], extra \['extra'\]"):
        tidy.validate(df)


def test_validate_rejects_bad_stage_and_split():
    df = _table()
    with pytest.raises(tidy.TidyError, match="stage"):
        tidy.validate(df.assign(stage="evaluation"))
    with pytest.raises(tidy.TidyError, match="split"):
        tidy.validate(df.assign(split="dev"))


def test_write_table_round_trip_with_csv_and_provenance(tmp_path):
    df = tidy.with_keys(_table(), dataset="synth", setting="1pair", seed=3)
    out = tidy.write_table(df, tmp_path / "eval.parquet", config={"candidates": [16]})
    assert (tmp_path / "eval.csv").exists()
    record = json.loads((tmp_path / "eval.parquet.provenance.json").read_text())
    assert record["config"] == {"candidates": [16]}
    assert record["versions"]["pandas"] == pd.__version__
    back = tidy.read_tables([out, out])
    assert len(back) == 2 * len(df)
    pd.testing.assert_frame_equal(back.iloc[:len(df)].reset_index(drop=True),
                                  df.reset_index(drop=True), check_dtype=False)
    csv = pd.read_csv(tmp_path / "eval.csv")
    assert csv.value.tolist() == df.value.tolist()
    # No temporary files are left behind by the atomic writes.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "eval.csv", "eval.parquet", "eval.parquet.provenance.json"]


def test_write_table_requires_parquet_suffix(tmp_path):
    with pytest.raises(tidy.TidyError, match="parquet"):
        tidy.write_table(_table(), tmp_path / "eval.csv")


def test_read_tables_names_the_bad_file(tmp_path):
    bad = tmp_path / "bad.parquet"
    _table().drop(columns=["metric"]).to_parquet(bad)
    with pytest.raises(tidy.TidyError, match="bad.parquet"):
        tidy.read_tables([bad])
