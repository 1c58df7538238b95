"""The Ray scoring engine (``runtime=ray``): the batched engine's per-chunk pipeline spread over a Ray cluster with
Ray Data, same contract and same cache keys (:mod:`harness.scoring.table`).

1. The manifest becomes a Ray dataset of **blocks** (block ``b`` = rows ``[b * chunk_size, (b + 1) * chunk_size)``:
   one local chunk, so scores are bitwise equal to the batched engine's on the same CPU build).
2. **Decode** runs in Ray CPU tasks (``map_batches`` with a function, ``decode_cpus`` each): read, hash, probe the
   score store read-only and decode what a stage still needs (:class:`harness.scoring.loader.ChunkSource`).
3. **Detect, embed, PAD** run in an actor pool (``map_batches`` with a class, ``concurrency=actors``, ``actor_cpus``
   / ``actor_gpus`` each, https://docs.ray.io/en/latest/data/batch_inference.html): each actor deserialises the
   three models once and scores blocks with :class:`harness.scoring.batched.BatchedRun`.
4. The driver streams each block's result into the score store (the same ``key -> value`` entries as the local
   cache, so a rerun or another engine reuses them) and into the block store (:mod:`harness.scoring.blocks`: one
   immutable Parquet file per block, with provenance ``engine`` / ``worker``), then builds the score table FROM
   the block files after :func:`harness.scoring.blocks.check_complete`.

Failures: Ray Data restarts a dead actor and retries its in-flight blocks (its actors default to
``max_restarts=-1``, ``max_task_retries=-1``); a block whose result arrives twice is counted once. A rerun reads and
hashes every row but computes only rows without cached values (``stats``: ``*_computed`` vs ``*_cached``).

``ray.init`` connects to ``address`` (or ``$RAY_ADDRESS``) when given and starts a local cluster otherwise; on a
multi-node cluster the score store's directory must be on a shared filesystem for the workers' cache probe (else
every row is recomputed; results are still stored by the driver).
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import time
from dataclasses import dataclass, field, fields

import pandas as pd
import torch
from tqdm.auto import tqdm

from harness.scoring.batched import BatchedOptions, BatchedRun, decodes_on_gpu, model_device, run_stage_ids
from harness.scoring.blocks import (
    COLUMNS,
    BlockStore,
    block_rows,
    block_set_key,
    check_complete,
    computed_rows,
    fill_ledger,
)
from harness.scoring.loader import ChunkSource
from harness.scoring.store import ScoreStore, StoreReader
from harness.scoring.table import Ledger, ScoreTable

log = logging.getLogger("harness.scoring")

__all__ = ["BlockScorer", "RayOptions", "StopAfter", "check_devices", "check_resources", "decode_block", "device_options", "ensure_ray",
           "ray_options", "run_ray", "score_manifest_ray", "visible_devices"]


class StopAfter(RuntimeError):
    """Raised by the driver when ``stop_after_blocks`` blocks are stored (test hook: a run stopped half-way)."""


@dataclass
class RayOptions(BatchedOptions):
    """Settings of :func:`run_ray` (see :func:`score_manifest_ray`): the batched engine's, which each actor runs
    with (:func:`batched_options`), and the pool's."""

    actors: int = 1
    actor_cpus: float = 1.0
    actor_gpus: float = 0.0
    decode_cpus: float = 0.25
    threads: int = 1
    address: str | None = None
    devices: list[int] | None = None  # this machine's GPUs (torch's indices): one actor on each, local Ray only
    max_in_flight: int | None = None  # blocks queued on one actor at a time (Ray's default: None)
    wait_for_actors_s: float | None = None  # > 0: no block is dispatched before every actor is up (else Ray's)
    model_factory: object = None  # a picklable callable -> (detector, embedder, pad), called once in each actor
    test_hook: dict = field(default_factory=dict)  # tests only: {"exit_after": k, "dir": path}
    stop_after_blocks: int | None = None  # tests only: raise StopAfter once this many blocks are stored


def score_manifest_ray(manifest: pd.DataFrame, detector, embedder, pad, cache: ScoreStore, batch_size: int = 32,
                       chunk_size: int = 128, amp: bool = False, progress: bool = True, **options) -> ScoreTable:
    """Score every manifest row on Ray: the contract of :func:`harness.scoring.batched.score_manifest_batched`.

    Keyword ``options`` (:class:`RayOptions`): ``actors`` (pool size), ``actor_cpus`` / ``actor_gpus`` (Ray
    resources per actor), ``decode_cpus`` (per decode task), ``threads`` (torch threads per actor), ``address``
    (cluster; default ``$RAY_ADDRESS`` or a local one), ``devices`` (GPUs of this machine, e.g. ``[0, 1]``: a
    local Ray instance that sees only those, one actor per GPU, ``actor_gpus=1``; :func:`device_options`),
    ``max_in_flight`` (Ray Data's ``max_tasks_in_flight_per_actor``; 1 hands a waiting block to an idle actor
    rather than queue it behind a busy one), ``wait_for_actors_s`` (Ray Data's ``wait_for_min_actors_s``: start
    every actor, models loaded, before the first block; fail after that many seconds when the cluster lacks the
    resources), ``model_factory`` (a picklable callable returning the three models, called once per actor, e.g.
    ``functools.partial(harness.experiment.build_models, cfg, "cuda")``; default: the driver's models, serialised
    once into the object store), ``detect_batch_size``, ``device``, ``gpu_decode``, ``max_pixels`` as in the
    batched engine, ``profile`` (a dict filled with engine, workers, devices, blocks, seconds, rows per second).
    ``batch_size``, ``chunk_size`` (= block size), ``amp``, ``progress`` as there."""
    opts = RayOptions(batch_size=batch_size, chunk_size=chunk_size, amp=amp, progress=progress, **options)
    return run_ray(manifest, detector, embedder, pad, cache, opts)


def ensure_ray(address: str | None = None, num_cpus: int | None = None, devices: list[int] | None = None) -> None:
    """``ray.init`` once per process: connect to ``address`` or ``$RAY_ADDRESS`` when set, else start a local
    cluster (``num_cpus``: default all cores; ``devices``: the only GPUs it sees, :func:`visible_devices`). Ray
    Data's own progress bars are turned off (the engine shows one)."""
    import ray

    addr = address or os.environ.get("RAY_ADDRESS") or None
    if devices and (addr or ray.is_initialized()):
        raise ValueError("runtime.devices picks GPUs of this machine for a Ray instance the run starts itself; "
                         "on a running Ray cluster (ray.address, $RAY_ADDRESS) set ray.actors and ray.actor_gpus")
    if not ray.is_initialized():
        if addr:
            ray.init(address=addr, log_to_driver=False)
        elif devices:  # Ray's local raylet takes its GPU ids from CUDA_VISIBLE_DEVICES when it starts
            os.environ["CUDA_VISIBLE_DEVICES"] = visible_devices(devices, os.environ.get("CUDA_VISIBLE_DEVICES"))
            ray.init(num_cpus=num_cpus, num_gpus=len(devices), include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


def check_resources(opts: RayOptions, resources: dict) -> None:
    """Refuse, in one line naming the keys, an actor pool that cannot run beside one decode task on the Ray
    instance (``resources``: ``ray.cluster_resources()``): Ray would otherwise wait for ever, silently."""
    cpus, gpus = float(resources.get("CPU", 0.0)), float(resources.get("GPU", 0.0))
    need = opts.actors * opts.actor_cpus + opts.decode_cpus
    if need > cpus + 1e-9:
        fit = max(0.0, (cpus - opts.decode_cpus) / max(opts.actors, 1))
        raise ValueError(f"runtime.ray: {opts.actors} actors x actor_cpus {opts.actor_cpus:g} + decode_cpus "
                         f"{opts.decode_cpus:g} = {need:g} CPUs, but this Ray instance has {cpus:g}: nothing could be "
                         f"scheduled; set runtime.ray.actor_cpus <= {fit:.3g} or fewer runtime.ray.actors")
    if opts.actors * opts.actor_gpus > gpus + 1e-9:
        raise ValueError(f"runtime.ray: {opts.actors} actors x actor_gpus {opts.actor_gpus:g} GPUs, but this Ray "
                         f"instance has {gpus:g}: set runtime.ray.actor_gpus or runtime.ray.actors lower")


def check_devices(devices, available: int) -> list[int]:
    """``runtime.devices`` as a list of distinct GPU indices below ``available`` (``torch.cuda.device_count()``),
    or ValueError naming the problem in one line."""
    devs = [int(d) for d in devices]
    if not devs or len(set(devs)) != len(devs) or min(devs) < 0:
        raise ValueError(f"runtime.devices must list distinct GPU indices (>= 0), got {list(devices)}")
    if max(devs) >= available:
        raise ValueError(f"runtime.devices={devs}: this machine has {available} CUDA device(s) (indices "
                         f"0..{available - 1})" if available else f"runtime.devices={devs}: no CUDA device here")
    return devs


def visible_devices(devices: list[int], current: str | None) -> str:
    """``CUDA_VISIBLE_DEVICES`` for the local Ray instance: ``devices`` are torch's indices, i.e. positions in an
    already set ``current`` mask (``"2,3"`` and ``[1]`` -> ``"3"``), else physical indices."""
    if current is None or not current.strip():
        return ",".join(str(d) for d in devices)
    visible = [v.strip() for v in current.split(",") if v.strip()]
    return ",".join(visible[d] for d in devices)


def device_options(devices, available: int) -> dict:
    """The pool for ``runtime.devices`` (with ``runtime.device=cuda``): one actor per listed GPU, ``actor_gpus=1``;
    Ray sets each actor's ``CUDA_VISIBLE_DEVICES`` to its own GPU
    (https://docs.ray.io/en/latest/ray-core/scheduling/accelerators.html)."""
    devs = check_devices(devices, available)
    return {"devices": devs, "actors": len(devs), "actor_gpus": 1.0}


def batched_options(opts: RayOptions) -> BatchedOptions:
    """The batched engine's options an actor runs with (progress off, decoding already done)."""
    own = {f.name: getattr(opts, f.name) for f in fields(BatchedOptions)}
    return BatchedOptions(**(own | {"progress": False, "profile": {}}))


def decode_block(batch: pd.DataFrame, source: ChunkSource) -> pd.DataFrame:
    """Ray Data task: read, hash, probe and decode block ``batch.block[0]`` (one row per batch)."""
    b = int(batch["block"].iloc[0])
    return pd.DataFrame({"block": [b], "payload": [pickle.dumps(source[b], protocol=5)]})


class _CollectingStore:
    """What an actor's :class:`BatchedRun` sees as its store: reads through :class:`StoreReader`, keeps new values
    for the driver (which alone writes the store)."""

    def __init__(self, path):
        self.path, self.reader, self.new = path, StoreReader(path), {}

    def get_many(self, keys):
        return self.reader.get_many(keys)

    def put_many(self, items):
        self.new.update(items)


class BlockScorer:
    """Ray Data actor: the three models (deserialised once), a :class:`BatchedRun`; one block per call."""

    def __init__(self, models, manifest: pd.DataFrame, ids: tuple[str, str, str], store_path, opts: RayOptions):
        import ray

        torch.set_num_threads(int(opts.threads))
        if opts.model_factory is not None:  # built on the actor's own device (a GPU driver is not needed)
            detector, embedder, pad = opts.model_factory()
        else:
            detector, embedder, pad = ray.get(models[0]) if isinstance(models, list) else models
        self.store = _CollectingStore(store_path)
        self.run = BatchedRun(manifest, detector, embedder, pad, self.store, batched_options(opts))
        if self.run.ledger.stage_ids != tuple(ids):
            raise RuntimeError(f"ray actor: stage ids {self.run.ledger.stage_ids} differ from the driver's {ids}")
        ctx = ray.get_runtime_context()
        gpus = "+".join(str(g) for g in ray.get_gpu_ids())  # the node's GPU ids given to this actor
        self.worker = f"ray:{ctx.get_node_id()[:8]}:{os.getpid()}:{self.run.dev}" + (f"/gpu{gpus}" if gpus else "")
        self.hook, self.done = dict(opts.test_hook or {}), 0

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        b, loaded = int(batch["block"].iloc[0]), pickle.loads(batch["payload"].iloc[0])
        self._hook_mark(b)
        led, self.store.new = self.run.ledger, {}
        led.stats = dict.fromkeys(led.stats, 0)
        prof = self.run.opts.profile
        before = dict(prof)
        self.run.score(loaded)
        done = computed_rows(led, loaded["hash"], self.store.new)
        rows = block_rows(led, loaded["idx"], loaded["hash"], "ray", self.worker, done)
        self.done += 1
        self._hook_exit()
        stage_s = {k: v - before.get(k, 0.0) for k, v in prof.items() if k.endswith("_s")}
        out = {"rows": rows, "new": self.store.new, "stats": dict(led.stats), "stage_s": stage_s}
        return pd.DataFrame({"block": [b], "payload": [pickle.dumps(out, protocol=5)]})

    def _hook_mark(self, b: int) -> None:  # test-only: record that this process started block b
        if self.hook.get("dir"):
            with open(os.path.join(self.hook["dir"], f"start-{b}-{os.getpid()}-{time.monotonic_ns()}"), "w"):
                pass

    def _hook_exit(self) -> None:  # test-only: one actor, once, dies hard after its k-th block, before returning
        k = self.hook.get("exit_after")
        if k and self.done == int(k):
            try:
                fd = os.open(os.path.join(self.hook["dir"], "died"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.close(fd)
            os._exit(1)


def _dataset(blocks: list[int], source: ChunkSource, models, manifest, ids, store_path, opts: RayOptions):
    import ray
    from ray.data.context import DEFAULT_WAIT_FOR_MIN_ACTORS_S

    wait = opts.wait_for_actors_s  # set before the dataset is made (it copies the context); Ray's default otherwise
    ray.data.DataContext.get_current().wait_for_min_actors_s = DEFAULT_WAIT_FOR_MIN_ACTORS_S if wait is None else wait
    ds = ray.data.from_items([{"block": b} for b in blocks], override_num_blocks=max(1, len(blocks)))
    ds = ds.map_batches(decode_block, batch_size=1, batch_format="pandas", fn_kwargs={"source": source},
                        num_cpus=opts.decode_cpus)
    pool = ray.data.ActorPoolStrategy(size=int(opts.actors), max_tasks_in_flight_per_actor=opts.max_in_flight)
    return ds.map_batches(BlockScorer, batch_size=1, batch_format="pandas", compute=pool,
                          num_cpus=opts.actor_cpus, num_gpus=opts.actor_gpus or None,
                          fn_constructor_args=([models], manifest, ids, None if store_path is None else str(store_path),
                                               opts))


def run_ray(manifest: pd.DataFrame, detector, embedder, pad, store: ScoreStore,
            opts: RayOptions | None = None) -> ScoreTable:
    """The driver (module docstring): stream the blocks through Ray, store them, check, build the table."""
    import ray

    t0, opts = time.perf_counter(), opts or RayOptions()
    if opts.devices and not str(opts.device or "").startswith("cuda"):
        raise ValueError(f"runtime.devices={list(opts.devices)} needs runtime.device=cuda, got {opts.device!r}")
    ensure_ray(opts.address, devices=opts.devices)
    if not (opts.address or os.environ.get("RAY_ADDRESS")):  # a cluster's autoscaler may still add nodes
        check_resources(opts, ray.cluster_resources())
    ids = _driver_stage_ids(detector, embedder, pad, store, opts)
    led = Ledger(manifest, embedder.dim, ids)
    n, size = len(manifest), int(opts.chunk_size)
    blocks = list(range(math.ceil(n / size)))
    key, bstore = block_set_key(manifest, ids, size), BlockStore(store)
    source = ChunkSource(led.paths, led.frames, size, ids, store.path, bool(ids[0].endswith("+nvjpeg")),
                         max_pixels=opts.max_pixels, skip=led.set_aside)
    models = ray.put((detector, embedder, pad) if opts.model_factory is None else None)
    got: dict[int, pd.DataFrame] = {}
    stats, stage_s, t_first = dict(led.stats), {}, None
    bar = tqdm(total=n, desc=f"scoring (ray, {opts.actors} actors)", unit="img", disable=not opts.progress)
    stream = _dataset(blocks, source, models, manifest, ids, store.path, opts).iter_rows() if blocks else []
    for row in stream:
        b, res = int(row["block"]), pickle.loads(row["payload"])
        t_first = t_first or (time.perf_counter(), len(res["rows"]))
        if b in got:  # delivered twice (a retried block): counted once
            continue
        store.put_many(res["new"])
        bstore.write(key, b, res["rows"])
        got[b] = res["rows"]
        stats = {k: stats[k] + res["stats"].get(k, 0) for k in stats}
        for k, v in res.get("stage_s", {}).items():
            stage_s[k] = stage_s.get(k, 0.0) + v
        bar.update(len(res["rows"]))
        if opts.stop_after_blocks is not None and len(got) >= opts.stop_after_blocks:
            bar.close()
            raise StopAfter(f"stopped after {len(got)} of {len(blocks)} blocks (stop_after_blocks)")
    bar.close()
    rows = pd.concat([*got.values(), pd.DataFrame(columns=COLUMNS)], ignore_index=True)  # the rows just written
    check_complete(rows, manifest, where=str(bstore.root / key) if bstore.root is not None else "ray engine")
    fill_ledger(led, rows)
    led.stats = stats
    table = led.table(pad)
    if opts.profile is not None and t_first is not None:  # after the first block: actors up, models loaded
        steady = time.perf_counter() - t_first[0]
        opts.profile["steady_rows_per_s"] = (n - t_first[1]) / steady if steady > 0 and n > t_first[1] else None
    _profile(opts, rows, len(blocks), time.perf_counter() - t0, n, stage_s)
    return table


def _driver_stage_ids(detector, embedder, pad, store, opts: RayOptions) -> tuple[str, str, str]:
    """The stage ids the actors' :class:`BatchedRun` uses (:func:`harness.scoring.batched.run_stage_ids`)."""
    dev = torch.device(opts.device) if opts.device is not None else model_device(embedder, pad)
    return run_stage_ids(detector, embedder, pad, store, opts.max_pixels, decodes_on_gpu(dev, opts.gpu_decode))


def _profile(opts: RayOptions, rows: pd.DataFrame, n_blocks: int, wall: float, n: int, stage_s: dict) -> None:
    workers = sorted(set(rows["worker"])) if len(rows) else []
    log.info("scored %d samples in %.1f s (%.1f img/s, ray engine, %d actors, %d worker processes)", n, wall,
             n / max(wall, 1e-9), opts.actors, len(workers))
    if opts.profile is not None:
        devices = sorted({w.split(":", 3)[3] for w in workers})  # "ray:<node>:<pid>:<device>[/gpu<id>]"
        opts.profile.update({"engine": "ray", "actors": int(opts.actors), "workers": workers, "devices": devices,
                             "blocks": n_blocks, "total_s": wall, "samples": n,
                             "rows_per_s": n / max(wall, 1e-9), "stage_s": stage_s, "rows_by_worker": {
                                 w: int(c) for w, c in rows["worker"].value_counts().items()}})



def ray_options(rt, available: int | None = None) -> dict:
    """The keyword options of :func:`score_manifest_ray` from ``runtime.ray`` (``conf/runtime/ray.yaml``; also
    ``max_in_flight`` / ``wait_for_actors_s`` where given); with ``runtime.devices`` set, one actor per listed GPU
    (:func:`device_options`; ``available``: default ``torch.cuda.device_count()``)."""
    r = rt.get("ray") or {}
    out = {"actors": int(r.get("actors", 1)), "actor_cpus": float(r.get("actor_cpus", 1.0)),
           "actor_gpus": float(r.get("actor_gpus", 0.0)), "decode_cpus": float(r.get("decode_cpus", 0.25)),
           "threads": int(r.get("threads", rt.get("threads", 1))), "address": r.get("address")}
    if r.get("max_in_flight") is not None:
        out["max_in_flight"] = int(r.get("max_in_flight"))
    if r.get("wait_for_actors_s") is not None:
        out["wait_for_actors_s"] = float(r.get("wait_for_actors_s"))
    if rt.get("devices") is not None:
        out.update(device_options(list(rt.get("devices")),
                                  torch.cuda.device_count() if available is None else available))
    return out
