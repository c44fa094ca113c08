"""The training loop: one jitted update that runs many steps with `lax.scan`; `run(...)` stage.

Per call, `training.steps_per_call` steps run on the device (fewer before a log/eval/checkpoint
boundary). The batch of step t is fixed by (seed, t): step t of epoch e = t // (n // B) takes
rows perm_e[j B:(j + 1) B], perm_e a NumPy permutation seeded with (seed, e). The dataset lives on
the device when it fits (`max_device_bytes`) and the compiled step gathers its rows from the
indices; otherwise a background thread gathers the rows from the (memory-mapped) host array for
the next call while the device runs the current one. Both paths feed identical batches.

A job may train several seeds of one setting (`training.seeds_per_job`, `train_seeds`): their
states are stacked on a leading axis and one compiled call advances them all, each on its own
batches; each keeps its own evaluations, checkpoints and rows, as a separate run would.

Outputs of `run` in out_dir: latest.npz (resume point), best.npz (lowest valid listener loss),
train_progress.jsonl (rows appended while it runs), train_metrics.parquet/.csv + provenance.
"""

from __future__ import annotations

import concurrent.futures
import functools
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


def make_update(cfg: TrainConfig, speaker: agents.Speaker, listener: agents.Listener,
                feature_dim: int, mesh: jax.sharding.Mesh, on_device: bool,
                seeds: int = 1) -> Callable:
    """The jitted multi-step update of `seeds` runs' states stacked on a leading axis (donated).

    on_device: `update(states, data (n, D), idx (G, K, B) int32)` gathers each batch in the step.
    streamed: `update(states, xs (G, K, B, D))`. Both return (states, StepMetrics of (G, K)).
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
    return jax.jit(over_seeds(update, seeds, cfg.training.seeds_batching, on_device),
                   donate_argnums=0)


def over_seeds(update: Callable, seeds: int, batching: str, on_device: bool) -> Callable:
    """`update(state, *batches)` of one run as an update of `seeds` stacked runs, each with its
    own batches (the data, when on the device, is shared). One run is the unstacked program;
    "map" runs the seeds one after another in the program, so each gets the values of a separate
    run bit for bit (tests/test_train.py); "vmap" batches them, which on CPU is not bit-identical
    (float32 round-off) and is where an accelerator gains."""
    add_axis = functools.partial(jax.tree_util.tree_map, lambda a: a[None])
    if seeds == 1:
        def one(states, *batches):
            return add_axis(update(unstack(states, 0), *batches[:-1], batches[-1][0]))
        return one
    if batching == "vmap":
        return jax.vmap(update, in_axes=(0, None, 0) if on_device else (0, 0))
    if on_device:
        return lambda states, data, idx: jax.lax.map(
            lambda a: update(a[0], data, a[1]), (states, idx))
    return lambda states, xs: jax.lax.map(lambda a: update(*a), (states, xs))


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
    InfoNCE loss over the whole evaluation batch, whose size is max(batch_size, max |C|). The
    seed is an argument, so that the runs of a job share one compiled game.
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
        sample_words = cfg.loss.reference_sampling
        self._play = jax.jit(lambda s, l, xb, k: game.population_play(
            speaker, listener, s, l, xb, self.candidates, k, sample_words))

    def __call__(self, state: population.TrainState, seed: int) -> tuple[dict[int, float], float]:
        """({|C|: mean accuracy}, mean listener loss) for the current state of run `seed`."""
        # str hashes are salted per process; a fixed table keeps evaluation reproducible.
        key = jax.random.fold_in(jax.random.PRNGKey(seed), 1 + EVAL_SPLITS.index(self.split))
        speakers = jax.tree_util.tree_map(lambda a: a[:self.p_s], state.speakers)
        listeners = jax.tree_util.tree_map(lambda a: a[:self.p_l], state.listeners)
        accs, losses = [], []
        for i, xb in enumerate(self.x):
            acc, loss = self._play(speakers, listeners, xb, jax.random.fold_in(key, i))
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
          out_dir: str | Path | None = None, **kwargs) -> TrainResult:
    """Trains a population on in-memory (or memory-mapped) features: `train_seeds` of one run."""
    return train_seeds([config], train_x, valid_x, test_x, [out_dir], **kwargs)[0]


class _Run:
    """What one run (seed) of a job keeps beside its slice of the stacked state."""

    def __init__(self, cfg: TrainConfig, out: Path | None, num_rows: int, eval_dataset: str):
        self.cfg, self.out = cfg, out
        self.schedule = BatchSchedule(cfg.seed, num_rows, cfg.training.batch_size)
        self.checkpointer = Checkpointer(out, cfg)
        self.log = TrainLog(out / "train_progress.jsonl" if out is not None else None,
                            eval_dataset, cfg.num_candidates)


def check_seed_group(configs: list[TrainConfig]) -> None:
    """Raises ConfigError unless the configs are one setting's runs: equal but for distinct seeds
    (they share one compiled program)."""
    def setting(c):
        return {k: v for k, v in c.to_dict().items() if k != "seed"}

    seeds = [c.seed for c in configs]
    if len(set(seeds)) != len(seeds):
        raise config_lib.ConfigError(f"the runs of one job need distinct seeds, got {seeds}")
    if any(setting(c) != setting(configs[0]) for c in configs[1:]):
        raise config_lib.ConfigError(
            "the runs of one job (training.seeds_per_job) must differ in their seed only")


def restore_together(runs: list[_Run], feature_dim: int) -> list | None:
    """The runs' resume points at one step, or None (train from scratch). A job killed between
    the runs' saves of one checkpoint leaves some a checkpoint ahead; they fall back on their
    previous generation, the step the others hold."""
    ckpts = [r.checkpointer.restore(feature_dim) for r in runs]
    if all(c is None for c in ckpts):
        return None
    first = min(c.step if c is not None else 0 for c in ckpts)
    if first > 0:
        ckpts = [c if c.step == first else r.checkpointer.restore(feature_dim, at_step=first)
                 for r, c in zip(runs, ckpts)]
    if first == 0 or any(c is None for c in ckpts):
        log.warning("the runs' resume points hold no common step (%s): training from scratch",
                    [c.step if c is not None else None for c in ckpts])
        for r in runs:
            r.checkpointer = Checkpointer(r.out, r.cfg)
        return None
    return ckpts


def stack(trees: list) -> object:
    return jax.tree_util.tree_map(lambda *a: np.stack([np.asarray(x) for x in a]), *trees)


def unstack(tree, i: int) -> object:
    return jax.tree_util.tree_map(lambda a: a[i], tree)


def train_seeds(configs: list[dict | TrainConfig | None], train_x: np.ndarray,
                valid_x: np.ndarray | None = None, test_x: np.ndarray | None = None,
                out_dirs: list[str | Path | None] | None = None, *, eval_dataset: str = "",
                devices=None, max_device_bytes: int = 8 << 30,
                callback: Callable[[int, population.TrainState], None] | None = None,
                ) -> list[TrainResult]:
    """Trains the runs of one setting that differ only in their seed in one program
    (`over_seeds`), each with its own batches, evaluations, checkpoints and rows.

    Args:
      configs: TrainConfigs, or nested overrides of their defaults.
      train_x: (n, D) float32 training features; valid_x / test_x: (m, D) or None (no evaluation
        of that split; without valid_x no best checkpoint).
      out_dirs: per run, where latest.npz, best.npz and train_progress.jsonl go; None: nothing is
        written. If an out_dir holds latest.npz the runs resume from it (same config required).
      eval_dataset: the `eval_dataset` column of the rows.
      devices: devices for data parallelism (default: all local devices).
      max_device_bytes: keep the train split on the device when it is at most this large.
      callback: called as callback(step, states) after each compiled call, states stacked over the
        runs (tests use it to interrupt a run); it must not keep them: their buffers are donated.
    """
    cfgs = [config_lib.resolve(c) for c in configs]
    check_seed_group(cfgs)
    cfg, t = cfgs[0], cfgs[0].training
    out_dirs = out_dirs or [None] * len(cfgs)
    train_x = np.asarray(train_x) if not isinstance(train_x, np.ndarray) else train_x
    if train_x.ndim != 2 or train_x.dtype != np.float32:
        raise ValueError(f"train features must be a (n, D) float32 array, got {train_x.shape} "
                         f"{train_x.dtype}")
    feature_dim = train_x.shape[1]
    speaker, listener = agents.make_speaker(cfg), agents.make_listener(cfg)
    mesh = parallel.data_mesh(devices)
    parallel.check_batch(mesh, t.batch_size)
    runs = [_Run(c, Path(o) if o is not None else None, train_x.shape[0], eval_dataset)
            for c, o in zip(cfgs, out_dirs)]
    evaluators = [Evaluator(cfg, speaker, listener, name, x)
                  for name, x in zip(EVAL_SPLITS, (valid_x, test_x)) if x is not None]

    ckpts = restore_together(runs, feature_dim)
    if ckpts is not None:
        states = stack([c.state for c in ckpts])
        for r, c in zip(runs, ckpts):
            r.log.start(c.step, c.meta.get("log_window", []), c.meta.get("train_seconds", 0.0))
    else:
        states = stack([population.init_state(r.cfg, speaker, listener, feature_dim)
                        for r in runs])
        for r in runs:
            r.log.start(None)
    for r in runs:
        r.log.attempt = [(progress.DEVICE + mesh.devices.flat[0].device_kind, mesh.devices.size),
                         (progress.POPULATION, cfg.population.num_speakers)]
    states = parallel.replicate(states, mesh)
    on_device = train_x.nbytes <= max_device_bytes
    update = make_update(cfg, speaker, listener, feature_dim, mesh, on_device, len(runs))
    data = parallel.replicate(jnp.asarray(train_x), mesh) if on_device else None
    prefetch = None if on_device else concurrent.futures.ThreadPoolExecutor(1)

    def indices(start, count):  # (G, count, B)
        return np.stack([r.schedule.indices(start, count) for r in runs])

    def host_batches(start, count):
        return train_x[indices(start, count)]  # (G, count, B, D), from the memory map

    def chunk_end(step):
        ends = [t.steps, (step // t.steps_per_call + 1) * t.steps_per_call]
        for every in (t.log_every, t.eval_every, t.checkpoint_every):
            ends.append((step // every + 1) * every)
        return min(ends)

    def due(step, every):
        return step % every == 0 or step == t.steps

    step = int(np.asarray(states.step)[0])
    pending = None
    if prefetch is not None and step < t.steps:
        pending = prefetch.submit(host_batches, step, chunk_end(step) - step)
    log.info("training %d run(s) for %d steps from step %d (data %s, %d device(s))", len(runs),
             t.steps, step, "on device" if on_device else "streamed", mesh.devices.size)
    tick = time.perf_counter()
    while step < t.steps:
        end = chunk_end(step)
        if on_device:
            idx = parallel.shard_batch(indices(step, end - step), mesh, batch_axis=2)
            states, metrics = update(states, data, idx)
        else:
            xs = pending.result()
            if end < t.steps:
                pending = prefetch.submit(host_batches, end, chunk_end(end) - end)
            states, metrics = update(states, parallel.shard_batch(xs, mesh, batch_axis=2))
        metrics = np.stack(jax.device_get(metrics))  # (6, G, k) per-step means
        # Each run is charged its share of the call (Table 5 shares the job's time alike).
        seconds = max(time.perf_counter() - tick, 1e-9) / len(runs)
        evaluate, save = evaluators and due(end, t.eval_every), due(end, t.checkpoint_every)
        for g, r in enumerate(runs):
            state = unstack(states, g) if evaluate or save else None  # a copy: only when read
            r.log.accumulate(metrics[:, g])
            r.log.seconds += seconds
            rows = []
            if due(end, t.log_every):
                rows = r.log.train_rows(end, (end - step) / seconds, peak_memory_mib(mesh))
                last = {row["metric"]: row["value"] for row in rows}
                log.info("seed %d step %d/%d  %.2f steps/s  acc %.4f  speaker %.4f  listener %.4f"
                         "  entropy %.3f  kl %.4f", r.cfg.seed, end, t.steps,
                         last["steps_per_second"], last["train_accuracy"],
                         last["speaker_loss"], last["listener_loss"], last["entropy"], last["kl"])
            if evaluate:
                for ev in evaluators:
                    accs, loss = ev(state, r.cfg.seed)
                    rows += [r.log.row("accuracy", a, end, ev.split, c) for c, a in accs.items()]
                    rows.append(r.log.row("listener_loss", loss, end, ev.split, ev.batch))
                    log.info("seed %d eval %s step %d  loss %.4f  %s", r.cfg.seed, ev.split, end,
                             loss, "  ".join(f"acc@{c} {a:.4f}" for c, a in accs.items()))
                    if ev.split == "valid":
                        r.checkpointer.validated(state, end, loss)
            r.log.add(rows)
            if save:
                r.checkpointer.save(state, end, r.log)
        step = end
        if callback is not None:
            callback(step, states)
        tick = time.perf_counter()
    if prefetch is not None:
        prefetch.shutdown()
    return [TrainResult(state=unstack(states, g), rows=r.log.rows,
                        best_step=r.checkpointer.best_step,
                        best_valid_loss=r.checkpointer.best_loss) for g, r in enumerate(runs)]


def run(cfg: dict | TrainConfig, data_dir: str | Path, out_dir: str | Path) -> pd.DataFrame:
    """Stage entry point of one run: `run_seeds` of one config."""
    return run_seeds([cfg], data_dir, [out_dir])[0]


def run_seeds(cfgs: list[dict | TrainConfig], data_dir: str | Path,
              out_dirs: list[str | Path]) -> list[pd.DataFrame]:
    """Stage entry point: trains the runs (one setting's seeds) on data_dir's train split
    (evaluating valid and test), writes each out_dir's {latest,best}.npz (+ provenance) and returns
    the runs' tidy training metrics; a run resumes from its out_dir/latest.npz when it belongs to
    it (`progress.claim_resume_point`)."""
    from emcom import data  # the data package is optional for in-memory use of `train`

    cfgs = [config_lib.resolve(c) for c in cfgs]
    data_dir, outs = Path(data_dir), [Path(o) for o in out_dirs]
    manifest = data.read_manifest(data_dir)
    if "train" not in manifest["splits"]:
        raise ValueError(f"{data_dir}/manifest.json lists no train split")
    # Loaded (and checked) before the resume points are touched, so a damaged split fails naming
    # its file and leaves them alone.
    splits = {name: data.load_split(data_dir, name).features
              for name in EVAL_SPLITS + ("train",) if name in manifest["splits"]}
    check_seed_group(cfgs)
    for cfg, out in zip(cfgs, outs):
        claim_resume_point(out, {"config": cfg.to_dict(), "manifest": manifest})
    results = train_seeds(cfgs, splits["train"], splits.get("valid"), splits.get("test"), outs,
                          eval_dataset=manifest.get("name", data_dir.name))
    for cfg, out in zip(cfgs, outs):
        for name in ("latest.npz", "best.npz"):
            if (out / name).exists():
                write_provenance(out / name, cfg, data_dir=str(data_dir))
    return [tidy.frame(tidy.row(**r) for r in result.rows) for result in results]
