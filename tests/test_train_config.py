"""Config: paper defaults, deep merge, errors naming the dotted key."""

import pytest

from emcom import config
from emcom.settings import stage_settings


def test_defaults_are_the_papers():
    cfg = config.resolve()
    assert cfg.game == config.GameConfig(vocab_size=20, message_length=10, num_candidates=1024)
    assert cfg.loss.kl_coef == 0.5 and cfg.loss.entropy_coef == 1e-4
    assert cfg.optimizer.learning_rate == 1e-4 and cfg.training.batch_size == 1024
    assert cfg.population.pairs == 1 and cfg.num_candidates == 1024
    assert cfg == config.TrainConfig()
    # the reference code's population semantics and loss scale (docs/training.md)
    assert cfg.population.update == "sequential" and cfg.loss.time_reduction == "mean"
    assert cfg.imitation.student == "free" and cfg.imitation.score == "ema"


def test_deep_merge_keeps_other_keys():
    cfg = config.resolve({"loss": {"kl_coef": 0}, "population": {"num_speakers": 10}})
    assert cfg.loss.kl_coef == 0.0 and isinstance(cfg.loss.kl_coef, float)
    assert cfg.loss.entropy_coef == 1e-4 and cfg.population.pairs == 10


def test_a_resolved_config_round_trips_through_its_dict():
    cfg = config.resolve({"training": {"eval_candidates": [4, 8]}, "population": {"num_speakers": 3}})
    assert config.resolve(cfg.to_dict()) == cfg and config.resolve(cfg) is cfg
    with pytest.raises(AttributeError):
        cfg.loss.kl_coef = 1.0  # frozen: a resolved config is never edited in place


def test_stage_settings_name_the_key():
    s = stage_settings("etl", {"steps": 5, "tasks": ["classification"]})
    assert s.steps == 5 and s.tasks == ("classification",) and s.batch_size == 4096
    with pytest.raises(config.ConfigError, match="etl.stepz"):
        stage_settings("etl", {"stepz": 1})
    with pytest.raises(config.ConfigError, match="evaluate.epochs"):
        stage_settings("evaluate", {"epochs": 1.5})


@pytest.mark.parametrize("over, key", [
    ({"loss": {"klcoef": 1}}, "loss.klcoef"),
    ({"game": {"vocab_size": 2.5}}, "game.vocab_size"),
    ({"loss": {"speaker": "ppo"}}, "loss.speaker"),
    ({"loss": {"kl_ema": 1.0}}, "loss.kl_ema"),
    ({"game": {"num_candidates": 2048}}, "game.num_candidates"),
    ({"training": {"eval_candidates": [1]}}, "training.eval_candidates"),
    ({"imitation": {"every": 1, "students": 2}}, None),  # fine with N = 1 (self-imitation)
    ({"population": {"num_speakers": 3}, "imitation": {"every": 1, "students": 3}},
     "imitation.students"),
    ({"training": 5}, "training"),
    ({"loss": {"time_reduction": "max"}}, "loss.time_reduction"),
    ({"population": {"update": "parallel"}}, "population.update"),
    ({"imitation": {"student": "teacher"}}, "imitation.student"),
    ({"imitation": {"score": "max"}}, "imitation.score"),
    ({"speaker": {"target_init": "zero"}}, "speaker.target_init"),
    ({"imitation": {"reduction": "mean"}}, "imitation.reduction"),  # replaced by loss.time_reduction
    # the last reset at the very end, or within one evaluation interval of it: refused
    # (resets follow steps kR + 1)
    ({"reset": {"every": 333}, "training": {"steps": 1000, "eval_every": 500}}, "reset.every"),
    ({"reset": {"every": 400}, "training": {"steps": 1000, "eval_every": 500}}, "reset.every"),
    ({"reset": {"every": 249}, "training": {"steps": 1000, "eval_every": 250}}, "reset.every"),
    ({"reset": {"every": 250}, "training": {"steps": 1000, "eval_every": 250}}, "reset.every"),
    ({"reset": {"every": 600}, "training": {"steps": 1000, "eval_every": 250}}, None),
    ({"reset": {"every": 400}, "training": {"steps": 1000, "eval_every": 100}}, None),
    ({"reset": {"every": 2000}, "training": {"steps": 1000}}, None),  # never resets
])
def test_errors_name_the_dotted_key(over, key):
    if key is None:
        config.resolve(over)
        return
    with pytest.raises(config.ConfigError, match=key.replace(".", r"\.")):
        config.resolve(over)
