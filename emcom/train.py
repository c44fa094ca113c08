"""The training loop: one jitted update that runs many steps with `lax.scan`; `run(...)` stage.

Per call, `training.steps_per_call` steps run on the device (fewer before a log/eval/checkpoint
boundary). The batch of step t is fixed by (seed, t): step t of epoch e = t // (n // B) takes
rows perm_e[j B:(j + 1) B], perm_e a NumPy permutation seeded with (seed, e). The dataset lives on
the device when it fits (`max_device_bytes`) and the compiled step gathers its rows from the
indices; otherwise a background thread gathers the rows from the (memory-mapped) host array for
the next call while the device runs the current one. Both paths feed identical batches.

Outputs of `run` in out_dir: latest.npz (resume point), best.npz (lowest valid listener loss),
train_progress.jsonl (rows appended while it runs), train_metrics.parquet/.csv + provenance.
"""

from __future__ import annotations

import concurrent.futures
import logging
import resource
import time
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from emcom import agents, config as config_lib, game, parallel, population, progress, tidy
from emcom.config import TrainConfig
from emcom.progress import Checkpointer, TrainLog, claim_resume_point
from emcom.provenance import write_provenance
from emcom.step import make_step

log = logging.getLogger(__name__)

MAX_EVAL_AGENTS = 10  # P = min(N, 10) (paper Table 3)
EVAL_SPLITS = ("valid", "test")


def make_update(cfg: TrainConfig, speaker: agents.Speaker, listener: agents.Listener, feature_dim: int,
                mesh: jax.sharding.Mesh, on_device: bool) -> Callable:
    """The jitted multi-step update (state donated).

    on_device: `update(state, data (n, D), idx (K, B) int32)` gathers each batch in the step.
    streamed: `update(state, xs (K, B, D))`. Both return (state, StepMetrics of (K,) arrays).
    """
    step = make_step(cfg, speaker, listener, feature_dim)

    def body(state, x):
        return step(state, parallel.constrain_batch(x, mesh))

    if on_device:
        def update(state, data, idx):
            return jax.lax.scan(lambda s, i: body(s, data[i]), state, idx)
    else:
        def update(state, xs):
            return jax.lax.scan(body, state, xs)
    return jax.jit(update, donate_argnums=0)


class BatchSchedule:
    """Row indices of every training batch, fixed by (seed, step): epoch-wise permutations."""

    def __init__(self, seed: int, num_rows: int, batch_size: int):
        if num_rows < batch_size:
            raise config_lib.ConfigError(
                f"config key 'training.batch_size'={batch_size} exceeds the {num_rows} rows of "
                "the train split")
        self.seed, self.n, self.b = seed, num_rows, batch_size
        self.steps_per_epoch = num_rows // batch_size
        self._cache: tuple[int, np.ndarray] | None = None

    def _perm(self, epoch: int) -> np.ndarray:
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, np.random.default_rng([self.seed, epoch]).permutation(self.n))
        return self._cache[1]

    def indices(self, start: int, count: int) -> np.ndarray:
        """(count, B) int32 rows of steps start .. start + count - 1."""
        out = np.empty((count, self.b), np.int32)
        for i, t in enumerate(range(start, start + count)):
            e, j = divmod(t, self.steps_per_epoch)
            out[i] = self._perm(e)[j * self.b:(j + 1) * self.b]
        return out


class Evaluator:
    """Greedy play of the first P = min(N, 10) speakers x listeners on fixed batches of a split.

    Accuracy at each |C| of `training.eval_candidates` (mean over pairs and batches) and the
    InfoNCE loss over the whole evaluation batch, whose size is max(batch_size, max |C|).
    """

    def __init__(self, cfg: TrainConfig, speaker, listener, split: str, x: np.ndarray):
        t = cfg.training
        self.candidates = tuple(t.eval_candidates)
        self.batch = max(t.batch_size, max(self.candidates))
        if x.shape[0] < self.batch:
            raise config_lib.ConfigError(
                f"the {split} split has {x.shape[0]} rows, fewer than the evaluation batch "
                f"max(training.batch_size, max(training.eval_candidates)) = {self.batch}")
        self.split = split
        n_batches = min(t.eval_batches, x.shape[0] // self.batch)
        self.x = np.asarray(x[:n_batches * self.batch]).reshape(n_batches, self.batch, -1)
        self.p_s = min(cfg.population.num_speakers, MAX_EVAL_AGENTS)
        self.p_l = min(cfg.population.num_listeners, MAX_EVAL_AGENTS)
        # str hashes are salted per process; a fixed table keeps evaluation reproducible.
        self.key = jax.random.fold_in(jax.random.PRNGKey(cfg.seed), 1 + EVAL_SPLITS.index(split))
        sample_words = cfg.loss.reference_sampling
        self._play = jax.jit(lambda s, l, xb, k: game.population_play(
            speaker, listener, s, l, xb, self.candidates, k, sample_words))

    def __call__(self, state: population.TrainState) -> tuple[dict[int, float], float]:
        """({|C|: mean accuracy}, mean listener loss) for the current state."""
        speakers = jax.tree_util.tree_map(lambda a: a[:self.p_s], state.speakers)
        listeners = jax.tree_util.tree_map(lambda a: a[:self.p_l], state.listeners)
        accs, losses = [], []
        for i, xb in enumerate(self.x):
            acc, loss = self._play(speakers, listeners, xb, jax.random.fold_in(self.key, i))
            accs.append(np.asarray(acc).mean(axis=(1, 2)))
            losses.append(float(np.asarray(loss).mean()))
        acc = np.mean(accs, axis=0)
        return {c: float(a) for c, a in zip(self.candidates, acc)}, float(np.mean(losses))


class TrainResult(NamedTuple):
    state: population.TrainState
    rows: list[dict]   # tidy rows (without dataset/setting/seed), resumed rows included
    best_step: int
    best_valid_loss: float


def peak_memory_mib(mesh) -> float:
    """Peak memory of this process so far: the first device's peak bytes in use where its
    backend reports them (GPUs), else the host's peak resident set (CPU: what the job costs)."""
    stats = mesh.devices.flat[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2 ** 20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def train(config: dict | TrainConfig | None, train_x: np.ndarray,
          valid_x: np.ndarray | None = None, test_x: np.ndarray | None = None,
          out_dir: str | Path | None = None, *, eval_dataset: str = "", devices=None,
          max_device_bytes: int = 8 << 30,
          callback: Callable[[int, population.TrainState], None] | None = None) -> TrainResult:
    """Trains a population on in-memory (or memory-mapped) features.

    Args:
      config: a TrainConfig, or nested overrides of its defaults.
      train_x: (n, D) float32 training features; valid_x / test_x: (m, D) or None (no evaluation
        of that split; without valid_x no best checkpoint).
      out_dir: where latest.npz, best.npz and train_progress.jsonl go; None: nothing is written.
        If out_dir/latest.npz exists the run resumes from it (same config required).
      eval_dataset: the `eval_dataset` column of the rows.
      devices: devices for data parallelism (default: all local devices).
      max_device_bytes: keep the train split on the device when it is at most this large.
      callback: called as callback(step, state) after each compiled call (tests use it to
        interrupt a run); it must not keep `state`, whose buffers are donated to the next call.
    """
    cfg = config_lib.resolve(config)
    t = cfg.training
    train_x = np.asarray(train_x) if not isinstance(train_x, np.ndarray) else train_x
    if train_x.ndim != 2 or train_x.dtype != np.float32:
        raise ValueError(f"train features must be a (n, D) float32 array, got {train_x.shape} "
                         f"{train_x.dtype}")
    feature_dim = train_x.shape[1]
    speaker, listener = agents.make_speaker(cfg), agents.make_listener(cfg)
    mesh = parallel.data_mesh(devices)
    parallel.check_batch(mesh, t.batch_size)
    schedule = BatchSchedule(cfg.seed, train_x.shape[0], t.batch_size)
    evaluators = [Evaluator(cfg, speaker, listener, name, x)
                  for name, x in zip(EVAL_SPLITS, (valid_x, test_x)) if x is not None]

    out = Path(out_dir) if out_dir is not None else None
    checkpointer = Checkpointer(out, cfg)
    train_log = TrainLog(out / "train_progress.jsonl" if out is not None else None,
                         eval_dataset, cfg.num_candidates)
    ckpt = checkpointer.restore(feature_dim)
    if ckpt is not None:
        state = ckpt.state
        train_log.start(ckpt.step, ckpt.meta.get("log_window", []),
                        ckpt.meta.get("train_seconds", 0.0))
    else:
        state = population.init_state(cfg, speaker, listener, feature_dim)
        train_log.start(None)

    train_log.attempt = [(progress.DEVICE + mesh.devices.flat[0].device_kind, mesh.devices.size),
                         (progress.POPULATION, cfg.population.num_speakers)]
    state = parallel.replicate(state, mesh)
    on_device = train_x.nbytes <= max_device_bytes
    update = make_update(cfg, speaker, listener, feature_dim, mesh, on_device)
    data = parallel.replicate(jnp.asarray(train_x), mesh) if on_device else None
    prefetch = None if on_device else concurrent.futures.ThreadPoolExecutor(1)

    def host_batches(start, count):
        return train_x[schedule.indices(start, count)]  # (count, B, D), from the memory map

    def chunk_end(step):
        ends = [t.steps, (step // t.steps_per_call + 1) * t.steps_per_call]
        for every in (t.log_every, t.eval_every, t.checkpoint_every):
            ends.append((step // every + 1) * every)
        return min(ends)

    def due(step, every):
        return step % every == 0 or step == t.steps

    step = int(state.step)
    pending = None
    if prefetch is not None and step < t.steps:
        pending = prefetch.submit(host_batches, step, chunk_end(step) - step)
    log.info("training %d steps from step %d (data %s, %d device(s))", t.steps, step,
             "on device" if on_device else "streamed", mesh.devices.size)
    tick = time.perf_counter()
    while step < t.steps:
        end = chunk_end(step)
        if on_device:
            idx = parallel.shard_batch(schedule.indices(step, end - step), mesh, batch_axis=1)
            state, metrics = update(state, data, idx)
        else:
            xs = pending.result()
            if end < t.steps:
                pending = prefetch.submit(host_batches, end, chunk_end(end) - end)
            state, metrics = update(state, parallel.shard_batch(xs, mesh, batch_axis=1))
        train_log.accumulate(np.stack(jax.device_get(metrics)))  # (6, k) per-step means
        seconds = max(time.perf_counter() - tick, 1e-9)
        train_log.seconds += seconds
        rows = []
        if due(end, t.log_every):
            rows = train_log.train_rows(end, (end - step) / seconds, peak_memory_mib(mesh))
            last = {r["metric"]: r["value"] for r in rows}
            log.info("step %d/%d  %.2f steps/s  acc %.4f  speaker %.4f  listener %.4f  "
                     "entropy %.3f  kl %.4f", end, t.steps, last["steps_per_second"],
                     last["train_accuracy"], last["speaker_loss"], last["listener_loss"],
                     last["entropy"], last["kl"])
        step = end
        if evaluators and due(step, t.eval_every):
            for ev in evaluators:
                accs, loss = ev(state)
                rows += [train_log.row("accuracy", a, step, ev.split, c) for c, a in accs.items()]
                rows.append(train_log.row("listener_loss", loss, step, ev.split, ev.batch))
                log.info("eval %s step %d  loss %.4f  %s", ev.split, step, loss,
                         "  ".join(f"acc@{c} {a:.4f}" for c, a in accs.items()))
                if ev.split == "valid":
                    checkpointer.validated(state, step, loss)
        train_log.add(rows)
        if due(step, t.checkpoint_every):
            checkpointer.save(state, step, train_log)
        if callback is not None:
            callback(step, state)
        tick = time.perf_counter()
    if prefetch is not None:
        prefetch.shutdown()
    return TrainResult(state=state, rows=train_log.rows, best_step=checkpointer.best_step,
                       best_valid_loss=checkpointer.best_loss)


def run(cfg: dict | TrainConfig, data_dir: str | Path, out_dir: str | Path) -> pd.DataFrame:
    """Stage entry point: trains on data_dir's train split (evaluating valid and test), writes
    out_dir/{latest,best}.npz (+ provenance) and returns the tidy training metrics; resumes from
    out_dir/latest.npz when it belongs to this run (`progress.claim_resume_point`)."""
    from emcom import data  # the data package is optional for in-memory use of `train`

    cfg = config_lib.resolve(cfg)
    data_dir, out = Path(data_dir), Path(out_dir)
    manifest = data.read_manifest(data_dir)
    if "train" not in manifest["splits"]:
        raise ValueError(f"{data_dir}/manifest.json lists no train split")
    # Loaded (and checked) before the resume point is touched, so a damaged split fails naming
    # its file and leaves the resume point alone.
    splits = {name: data.load_split(data_dir, name).features
              for name in EVAL_SPLITS + ("train",) if name in manifest["splits"]}
    claim_resume_point(out, {"config": cfg.to_dict(), "manifest": manifest})
    result = train(cfg, splits["train"], splits.get("valid"), splits.get("test"), out,
                   eval_dataset=manifest.get("name", data_dir.name))
    for name in ("latest.npz", "best.npz"):
        if (out / name).exists():
            write_provenance(out / name, cfg, data_dir=str(data_dir))
    return tidy.frame(tidy.row(**r) for r in result.rows)
