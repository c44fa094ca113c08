"""Grids in `experiments:` expand into one named setting per point."""

import pytest

from emcom import experiments
from emcom.config import ConfigError, resolve

SWEEP = {"datasets": ["d"], "seeds": 2, "train": {"loss": {"kl_ema": 0.9}},
         "grid": {"loss.kl_coef": [0, 0.5], "loss.entropy_coef": [0.0, 1e-4]}}


def test_a_grid_expands_in_product_order_with_its_train_block():
    out = experiments.expand({"first": {"datasets": ["d"], "seeds": 1}, "sweep": SWEEP})
    assert list(out) == ["first", "sweep+kl_coef0+entropy_coef0", "sweep+kl_coef0+entropy_coef0.0001",
                         "sweep+kl_coef0.5+entropy_coef0", "sweep+kl_coef0.5+entropy_coef0.0001"]
    point = out["sweep+kl_coef0.5+entropy_coef0.0001"]
    assert point["train"] == {"loss": {"kl_ema": 0.9, "kl_coef": 0.5, "entropy_coef": 1e-4}}
    assert point["seeds"] == 2 and point["grid_of"] == "sweep" and "grid" not in point
    cfg = resolve(point["train"])
    assert (cfg.loss.kl_coef, cfg.loss.entropy_coef, cfg.loss.kl_ema) == (0.5, 1e-4, 0.9)
    assert SWEEP["train"] == {"loss": {"kl_ema": 0.9}}  # the input is not modified


@pytest.mark.parametrize("grid, match", [
    ({}, "grid must be a non-empty mapping"),
    ({"loss.kl_coef": []}, r"grid.loss.kl_coef must be a non-empty list"),
    ({"loss.klcoef": [1]}, r"grid.loss.klcoef: unknown config key 'loss.klcoef'"),
    ({"loss.kl_coef": ["big"]}, r"grid.loss.kl_coef: .*must be a number"),
])
def test_bad_grids_name_the_key(grid, match):
    with pytest.raises(ConfigError, match=match):
        experiments.expand({"s": {**SWEEP, "grid": grid}})


def test_a_point_may_not_shadow_a_written_setting():
    clash = {"s+kl_coef0": {"datasets": ["d"], "seeds": 1},
             "s": {"datasets": ["d"], "seeds": 1, "grid": {"loss.kl_coef": [0]}}}
    with pytest.raises(ConfigError, match="exists already"):
        experiments.expand(clash)
