"""The language stage: topographic similarity of each speaker (image and attribute meaning
spaces) and the edit distance between the population's speakers, on a checkpoint's greedy (or, under
`loss.reference_sampling`, sampled) messages. The metrics themselves are
`emcom.metrics` (and `emcom.distances` for the attributes' one-hot codes)."""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import jax
import numpy as np
import pandas as pd

from emcom import agents, data, evaluate, tidy
from emcom.distances import one_hot_attributes
from emcom.metrics import speaker_edit_distance, topographic_similarities
from emcom.settings import LanguageSettings, stage_settings

log = logging.getLogger(__name__)


def run(settings: LanguageSettings | Mapping[str, Any] | None, checkpoint: Any,
        data_dir: str | os.PathLike) -> pd.DataFrame:
    """The language stage: TopSim per speaker and the edit distance between speakers.

    Args:
      checkpoint: a checkpoint path or an `emcom.checkpoint.Checkpoint`.
      data_dir: the prepared dataset.
      settings: `language:` (a LanguageSettings or a mapping of overrides of its defaults).
    Returns:
      tidy rows (stage "language", listener -1, candidates -1): `topsim_image` (meanings = input
      features) and, where the dataset has attributes, `topsim_attributes` per speaker (the first
      P = min(N, max_agents)) and their mean (speaker -1); `edit_distance_speakers` (speaker -1)
      when P >= 2. Every speaker is measured on the same subsample.
    """
    settings = stage_settings("language", settings)
    ckpt = evaluate.as_checkpoint(checkpoint)
    split = data.load_split(data_dir, settings.split)
    count = min(evaluate.num_agents(ckpt.speakers), int(settings.max_agents))
    speakers = evaluate.first_agents(ckpt.speakers, count)
    rows_index = np.arange(len(split))
    max_messages = settings.max_messages
    if max_messages is not None and max_messages < len(split):
        rng = np.random.default_rng(int(settings.seed))
        rows_index = np.sort(rng.choice(len(split), size=int(max_messages), replace=False))
    features = np.asarray(split.features[rows_index])
    sampled = evaluate.sampled_words(ckpt.config)
    log.info("%s messages of %d speakers on %d %s examples", "sampled" if sampled else "greedy",
             count, len(rows_index), settings.split)
    messages = evaluate.speaker_messages(
        agents.make_speaker(ckpt.config), speakers, features, int(settings.batch_size),
        jax.random.PRNGKey(int(settings.seed)) if sampled else None)  # (P, N, T)
    attributes = None
    if split.attributes is not None:
        attributes = one_hot_attributes(split.attributes[rows_index], split.attribute_names)
    common = dict(stage="language", split=settings.split, step=ckpt.step)
    rows: list[dict[str, Any]] = []
    spaces = {"topsim_image": features, "topsim_attributes": attributes}
    for metric, meanings in spaces.items():
        if meanings is None:
            log.info("%s: the dataset has no attributes, skipped", metric)
            continue
        values = topographic_similarities(messages, meanings)  # (P,)
        log.info("%s per speaker: %s", metric, np.round(values, 4).tolist())
        rows += tidy.make_rows(metric, values, axes=("speaker",), coords=(range(count),),
                               **common)
        rows += tidy.make_rows(metric, np.nanmean(values) if np.isfinite(values).any()
                               else np.nan, **common)
    if count >= 2:
        rows += tidy.make_rows("edit_distance_speakers", speaker_edit_distance(messages),
                               **common)
    return tidy.frame(rows)
