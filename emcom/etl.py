"""Ease and transfer learning (ETL): fresh listeners trained on the languages of frozen speakers.

Protocol (paper §2.4, App. A.4, `docs/evaluation.md`): the first min(N, max_speakers) speakers of a
checkpoint speak greedily (their language is then a fixed function of the input; under the
checkpoint's `loss.reference_sampling` each row's message is sampled once); for each of
them `listeners` newly initialised listeners learn one task (`emcom.etl_tasks`) for `steps` steps
with Adam (learning_rate), and are measured every `eval_every` steps on the held-out split
(`measure_on: test`) or on a fresh training batch (`measure_on: train`, what the reference code
reports). Reconstruction needs the images, which none of the prepared datasets carries: not
applicable.

All S x L listeners of a task train together: one jitted call runs `steps_per_call` steps under
`lax.scan`, each step `vmap`ped over speakers and listeners (they all see the same batch rows,
each through its own speaker's messages).
"""

from __future__ import annotations

import functools
import logging
import os
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from emcom import agents, data, evaluate, tidy
from emcom.config import TrainConfig
from emcom.etl_tasks import (TASKS, Task, attributes_task, classification_task,
                             discrimination_task)
from emcom.settings import EtlSettings, stage_settings

log = logging.getLogger(__name__)

MEASURE_ON = ("test", "train")


def _grid(fn: Callable, in_axes: tuple) -> Callable:
    """vmap over listeners (inner) and speakers (outer); `in_axes` are the speaker-level axes.

    Arguments mapped over speakers (axis 0) are shared by that speaker's listeners, except params
    and optimizer states which are mapped over both.
    """
    inner = jax.vmap(fn, in_axes=tuple(0 if a == "agent" else None for a in in_axes))
    return jax.vmap(inner, in_axes=tuple(0 if a in ("agent", "speaker") else None
                                         for a in in_axes))


@functools.lru_cache(maxsize=8)
def make_trainer(task: Task, learning_rate: float
                 ) -> tuple[optax.GradientTransformation, Callable, Callable]:
    """(optimizer, train, evaluate): Adam(learning_rate) and jitted functions over (S, L) stacked
    listeners.

    Cached per task object so that repeated trainings of one task reuse the compilation.

    train(params, opt_state, messages (K, S, B, T), batches {(K, B, ...)}, keys (K, 2))
      -> (params, opt_state, losses (K, S, L)): K steps under lax.scan.
    evaluate(params, messages (S, B, T), batch, mask (B,))
      -> (loss sum (S, L), success sums (S, L[, A])) over the rows where mask is 1.
    """
    optimizer = optax.adam(learning_rate)

    def mean_loss(params, message, batch, rng):
        return task.loss(params, message, batch, rng)[0].mean()

    def step_one(params, opt_state, message, batch, rng):
        loss, grads = jax.value_and_grad(mean_loss)(params, message, batch, rng)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    step_all = _grid(step_one, ("agent", "agent", "speaker", None, None))

    @jax.jit
    def train(params, opt_state, messages, batches, keys):
        def body(carry, xs):
            params, opt_state = carry
            message, batch, key = xs
            params, opt_state, loss = step_all(params, opt_state, message, batch, key)
            return (params, opt_state), loss
        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state),
                                                   (messages, batches, keys))
        return params, opt_state, losses

    def eval_one(params, message, batch, mask):
        # mask (B,): 1 for real rows, 0 for the padding of the last batch.
        loss, success = task.loss(params, message, batch, jax.random.PRNGKey(0))
        return loss @ mask, jnp.tensordot(mask, success, axes=1)

    evaluate_fn = jax.jit(_grid(eval_one, ("agent", "speaker", None, None)))
    return optimizer, train, evaluate_fn


def _batch(split_arrays: Mapping[str, np.ndarray], rows: np.ndarray) -> dict[str, jax.Array]:
    return {k: jnp.asarray(v[rows]) for k, v in split_arrays.items()}


def train_listeners(cfg: TrainConfig, task: Task, train_messages: np.ndarray,
                    train_arrays: Mapping[str, np.ndarray], test_messages: np.ndarray,
                    test_arrays: Mapping[str, np.ndarray], settings: EtlSettings
                    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Trains `listeners` fresh listeners per speaker on one task; the held-out curve.

    Args:
      cfg: the checkpoint's resolved config (listener sizes).
      train_messages: (S, N, T) greedy messages of the frozen speakers on the training rows.
      train_arrays: {"x": (N, D), "label": (N,), "attributes": (N, A)} of the training rows.
      test_messages, test_arrays: the same for the held-out split (M rows).
      settings: resolved ETL settings.
    Returns:
      {step: (mean loss (S, L), accuracy (S, L) or (S, L, A))} at step 0, every eval_every steps
      and the last step.
    """
    num_speakers, n, _ = train_messages.shape
    num_listeners = int(settings.listeners)
    batch = min(int(settings.batch_size), n)
    eval_batch = min(batch, len(test_messages[0]))
    if task.candidates != -1:
        eval_batch = min(task.candidates, eval_batch)  # the whole evaluation batch is candidates
    optimizer, train, evaluate_fn = make_trainer(task, float(settings.learning_rate))

    key = jax.random.fold_in(jax.random.PRNGKey(int(settings.seed)), TASKS.index(task.name))
    key, init_key = jax.random.split(key)
    init_keys = jax.random.split(init_key, num_speakers * num_listeners)
    dummy = _batch(train_arrays, np.arange(1))

    @jax.jit
    def init(keys):
        # lax.map, not vmap: the random initialisers compile once, not batched (much faster).
        params = jax.lax.map(lambda k: task.init(k, jnp.asarray(train_messages[0, :1]),
                                                 dummy["x"]), keys)
        return params, jax.vmap(optimizer.init)(params)

    params, opt_state = init(init_keys)
    params, opt_state = jax.tree_util.tree_map(
        lambda a: a.reshape((num_speakers, num_listeners) + a.shape[1:]), (params, opt_state))

    steps, every, per_call = settings.steps, settings.eval_every, settings.steps_per_call
    marks = sorted({0, steps, *range(every, steps, every)})
    rng = np.random.default_rng(int(settings.seed))
    # Its own stream, so that measuring does not change the training batches.
    measure_rng = np.random.default_rng([int(settings.seed), 1])

    def measure_train_batch() -> tuple[np.ndarray, np.ndarray]:
        rows = measure_rng.choice(n, size=batch, replace=False)
        loss, success = evaluate_fn(params, jnp.asarray(train_messages[:, rows]),
                                    _batch(train_arrays, rows), jnp.ones(batch, jnp.float32))
        return np.asarray(loss) / batch, np.asarray(success) / batch

    def measure() -> tuple[np.ndarray, np.ndarray]:
        if settings.measure_on == "train":
            return measure_train_batch()
        loss, success, count = 0.0, 0.0, 0
        size = len(test_messages[0])
        for start in range(0, size, eval_batch):
            rows = np.arange(start, min(start + eval_batch, size))
            if task.candidates != -1 and len(rows) < eval_batch:
                break  # a partial batch has fewer candidates: dropped
            mask = np.zeros(eval_batch, np.float32)
            mask[:len(rows)] = 1
            rows = np.pad(rows, (0, eval_batch - len(rows)))  # padded with row 0, masked out
            batch_loss, batch_success = evaluate_fn(params, jnp.asarray(test_messages[:, rows]),
                                                    _batch(test_arrays, rows), jnp.asarray(mask))
            loss, success = loss + np.asarray(batch_loss), success + np.asarray(batch_success)
            count += int(mask.sum())
        return loss / count, success / count

    curve = {0: measure()}
    done = 0
    for mark in marks[1:]:
        while done < mark:
            k = min(per_call, mark - done)
            rows = np.stack([rng.choice(n, size=batch, replace=False) for _ in range(k)])  # (K, B)
            messages = jnp.asarray(np.moveaxis(train_messages[:, rows], 1, 0))  # (K, S, B, T)
            batches = {name: jnp.asarray(v[rows]) for name, v in train_arrays.items()}
            key, sub = jax.random.split(key)
            params, opt_state, losses = train(params, opt_state, messages, batches,
                                              jax.random.split(sub, k))
            done += k
        curve[mark] = measure()
        log.info("%s step %d/%d: train loss %.4f, %s accuracy %.4f", task.name, done,
                 steps, float(np.mean(losses[-1])), settings.measure_on,
                 float(np.mean(curve[mark][1])))
    return curve


def _check_settings(settings: EtlSettings) -> None:
    for key in ("steps", "eval_every", "steps_per_call", "listeners", "max_speakers",
                "batch_size", "candidates"):
        value = getattr(settings, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"etl.{key} must be a positive integer, got {value!r}")
    if settings.candidates < 2:
        raise ValueError(f"etl.candidates must be >= 2, got {settings.candidates}")
    unknown = [t for t in settings.tasks if t not in TASKS]
    if "reconstruction" in unknown:
        raise ValueError("etl.tasks: reconstruction needs the images, which the prepared "
                         "datasets do not carry (BYOL features only); remove it")
    if unknown:
        raise ValueError(f"etl.tasks: unknown task(s) {unknown}; known: {list(TASKS)}")
    if settings.measure_on not in MEASURE_ON:
        raise ValueError(f"etl.measure_on must be one of {MEASURE_ON}, got "
                         f"{settings.measure_on!r}")


def run(settings: EtlSettings | Mapping[str, Any] | None, checkpoint: Any,
        data_dir: str | os.PathLike) -> pd.DataFrame:
    """The ETL stage of a checkpoint; tidy rows (stage "etl", split = settings.split, or the
    train split with `measure_on: train`).

    Rows per (frozen speaker, fresh listener, step): `etl_<task>` accuracy (discrimination with
    `candidates` = |C|), `etl_loss/<task>` held-out loss, and for attributes `etl_attribute/<Name>`.
    `step` is the ETL step; the last step's rows are the final values.
    """
    settings = stage_settings("etl", settings)
    _check_settings(settings)
    ckpt = evaluate.as_checkpoint(checkpoint)
    cfg = ckpt.config
    manifest = data.read_manifest(data_dir)
    train_split = data.load_split(data_dir, settings.train_split)
    test_split = data.load_split(data_dir, settings.split)
    count = min(evaluate.num_agents(ckpt.speakers), int(settings.max_speakers))
    speakers = evaluate.first_agents(ckpt.speakers, count)
    speaker = agents.make_speaker(cfg)
    sampled = evaluate.sampled_words(cfg)
    log.info("%s messages of %d frozen speakers", "sampled" if sampled else "greedy", count)
    key = jax.random.PRNGKey(int(settings.seed))
    messages = {name: evaluate.speaker_messages(speaker, speakers, np.asarray(split.features),
                                                rng=jax.random.fold_in(key, len(TASKS) + i)
                                                if sampled else None)
                for i, (name, split) in enumerate((("train", train_split), ("test", test_split)))}
    arrays = {name: {"x": np.asarray(split.features), "label": np.asarray(split.labels)}
              for name, split in (("train", train_split), ("test", test_split))}

    tasks = []
    for name in settings.tasks:
        if name == "discrimination":
            tasks.append(discrimination_task(cfg, min(int(settings.candidates),
                                                      int(settings.batch_size),
                                                      len(train_split), len(test_split))))
        elif name == "classification":
            num_classes = int(manifest["num_classes"])
            for split_name, split in (("train", train_split), ("test", test_split)):
                if split.labels.size and (split.labels.min() < 0
                                          or split.labels.max() >= num_classes):
                    raise ValueError(f"{data_dir}/{split_name}: labels outside [0, num_classes="
                                     f"{num_classes}) of manifest.json")
            tasks.append(classification_task(cfg, num_classes))
        elif train_split.attributes is None or test_split.attributes is None:
            log.info("the dataset has no attributes: the attributes task is skipped")
        else:
            num_values = max(2, int(train_split.attributes.max()) + 1,
                             int(test_split.attributes.max()) + 1)
            names = train_split.attribute_names
            tasks.append(attributes_task(cfg, len(names), num_values))
            for split_name, split in (("train", train_split), ("test", test_split)):
                arrays[split_name]["attributes"] = np.asarray(split.attributes)

    rows: list[dict[str, Any]] = []
    grid = dict(axes=("speaker", "listener"), coords=(range(count), range(settings.listeners)))
    for task in tasks:
        log.info("ETL task %s: %d speakers x %d listeners, %d steps", task.name, count,
                 settings.listeners, settings.steps)
        curve = train_listeners(cfg, task, messages["train"], arrays["train"], messages["test"],
                                arrays["test"], settings)
        split = settings.split if settings.measure_on == "test" else settings.train_split
        common = dict(stage="etl", split=split, candidates=task.candidates)
        for step, (loss, accuracy) in curve.items():
            rows += tidy.make_rows(f"etl_loss/{task.name}", loss, step=step, **grid, **common)
            if task.name == "attributes":
                for a, name in enumerate(train_split.attribute_names):
                    rows += tidy.make_rows(f"etl_attribute/{name}", accuracy[..., a], step=step,
                                           **grid, **common)
                accuracy = accuracy.mean(-1)
            rows += tidy.make_rows(f"etl_{task.name}", accuracy, step=step, **grid, **common)
    return tidy.frame(rows)
