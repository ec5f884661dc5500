"""Where a batch's children are trained: in this process, or as Ray tasks.

The unit of parallel work is one child's proxy training. The search loop
(run.py) samples a whole batch, then asks an executor for the children's
accuracies and consumes them in sample order; latency, spot checks, rewards
and the PPO update stay in the driver, in that order, so a run's samples and
rewards do not depend on the executor or the number of workers.

  serial  every child trained here, one after the other (the default; no Ray)
  ray     cache misses fanned out as Ray tasks (local Ray started on demand with
          `workers`, or an existing cluster at `address`). The accuracy cache
          is read and written by the driver only, so it lives on the head node.
          A task whose worker process dies is retried (`max_retries`), so a
          dead worker costs only its own sample. A device is one actor (one
          phone, one queue of measurements), placed on the driver's node.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

from latbench.errors import InputError, LatbenchError
from latbench.nets.arch import Arch
from latbench.proxy.evaluator import AccuracyResult, AccuracySource, evaluate


@dataclass(frozen=True)
class ChildResult:
    """One child's accuracy, or why it has none."""

    result: AccuracyResult | None
    error: str = ""
    elapsed_s: float = 0.0  # time spent producing it (training, or ~0 for a cache hit)


class Executor(ABC):
    """Trains a batch of children; yields their results in the order given."""

    name: str

    @abstractmethod
    def accuracies(
        self, source: AccuracySource, archs: Sequence[Arch]
    ) -> Iterator[ChildResult]: ...

    def device_measure(
        self, profile: str, precision: str
    ) -> tuple[Callable[[Arch], float], Callable[[], None]]:
        """(measure(arch) -> median ms, close()) for a device profile."""
        dev = DeviceMeasurer(profile, precision)
        return dev.measure, dev.close

    def close(self) -> None:
        pass


class DeviceMeasurer:
    """Opens one device and measures whole networks on it, one at a time."""

    def __init__(self, profile: str, precision: str):
        from latbench.devices import load_profile, open_device

        self.precision = precision
        self.dev = open_device(load_profile(profile))

    def measure(self, arch: Arch) -> float:
        from latbench.profiling.networks import measure_arch

        return float(measure_arch(self.dev, arch, self.precision).median_ms)

    def close(self) -> None:
        self.dev.close()


class SerialExecutor(Executor):
    name = "serial"

    def accuracies(self, source, archs):
        for arch in archs:
            t0 = time.monotonic()
            try:
                res = evaluate(source, arch)
            except LatbenchError:
                raise
            except Exception as exc:  # noqa: BLE001 - one unbuildable network must not end the search
                yield ChildResult(
                    None, f"accuracy: {type(exc).__name__}: {exc}"[:300], time.monotonic() - t0
                )
                continue
            yield ChildResult(res, "", 0.0 if res.cached else time.monotonic() - t0)


def _train_child(source: AccuracySource, arch: Arch) -> tuple[AccuracyResult, float, int]:
    """Ray task body: (result, seconds, worker pid)."""
    t0 = time.monotonic()
    res = source.train(arch)
    return res, time.monotonic() - t0, os.getpid()


class RayExecutor(Executor):
    name = "ray"

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        max_retries: int = 2,
        cpus_per_child: float = 1,
        gpus_per_child: float = 0,
    ):
        try:
            import ray
        except ImportError:
            raise InputError(
                "parallel evaluation needs Ray: pip install 'latbench[ray]' "
                "(or drop --ray-workers/--ray-address for the serial path)",
                "--ray-workers",
            ) from None
        self.ray = ray
        self.max_retries = max_retries
        self.worker_pids: set[int] = set()
        if cpus_per_child <= 0 or gpus_per_child < 0:
            raise InputError("--cpus-per-child must be > 0 and --gpus-per-child >= 0")
        env = {"TF_CPP_MIN_LOG_LEVEL": "3"}
        for k in ("PYTHONPATH", "LATBENCH_CACHE"):
            if os.environ.get(k):
                env[k] = os.environ[k]
        # a user's evaluator module is found from the driver's directory, as it was here
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), os.getcwd()) if p)
        self.env = env
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            if address:
                ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
            else:
                if workers is None or workers < 1:
                    raise InputError(f"must be >= 1, got {workers}", "--ray-workers")
                # workers at the driver's priority (Ray's default nices them to 15, which
                # starves them on a shared machine while the serial path runs at 0)
                # address="local": a new Ray of our own, even where `ray start` ran before
                ray.init(
                    address="local",
                    num_cpus=workers * cpus_per_child,
                    include_dashboard=False,
                    log_to_driver=False,
                    runtime_env={"env_vars": env},
                    object_store_memory=200 * 2**20,
                    _system_config={"worker_niceness": 0},
                )
        if gpus_per_child and ray.cluster_resources().get("GPU", 0) < gpus_per_child:
            gpus = ray.cluster_resources().get("GPU", 0)
            self.close()
            raise InputError(
                f"each child asks for {gpus_per_child:g} GPU(s) but the Ray cluster has {gpus:g}",
                "--gpus-per-child",
            )
        self._task = ray.remote(
            num_cpus=cpus_per_child, num_gpus=gpus_per_child, max_retries=max_retries
        )(_train_child)
        self._source_refs: dict[int, object] = {}

    def _submit(self, ref, source, arch):
        """One child's task, in workers whose TensorFlow runs the source's thread count (a
        worker pool of its own per count: a started TensorFlow cannot change it)."""
        threads = getattr(source, "threads", 0)
        if not threads:
            return self._task.remote(ref, arch)
        env = {**self.env, "TF_NUM_INTRAOP_THREADS": str(threads)}
        env["TF_NUM_INTEROP_THREADS"] = str(threads)
        return self._task.options(runtime_env={"env_vars": env}).remote(ref, arch)

    def _source_ref(self, source):
        if id(source) not in self._source_refs:  # ship the dataset arrays once
            self._source_refs[id(source)] = (source, self.ray.put(source))
        return self._source_refs[id(source)][1]

    def accuracies(self, source, archs):
        ray = self.ray
        from ray.exceptions import RayTaskError

        hits = [source.lookup(a) for a in archs]
        keys = [source.key(a) for a in archs]
        ref = self._source_ref(source)
        pending: dict[str, object] = {}
        for a, k, hit in zip(archs, keys, hits):
            if hit is None and k not in pending:
                pending[k] = self._submit(ref, source, a)
        done: set[str] = set()
        try:
            for a, k, hit in zip(archs, keys, hits):
                if hit is not None:
                    yield ChildResult(hit, "", 0.0)
                    continue
                if k in done:  # the same network twice in one batch: the serial path's cache hit
                    again = source.lookup(a)
                    if again is not None:
                        yield ChildResult(again, "", 0.0)
                        continue
                try:
                    while not ray.wait([pending[k]], timeout=0.5)[0]:
                        pass  # back in Python twice a second, so Ctrl-C is seen at once
                    res, dt, pid = ray.get(pending[k])
                except RayTaskError as exc:
                    cause = getattr(exc, "cause", None) or exc
                    if isinstance(cause, LatbenchError):
                        raise cause from None
                    done.add(k)
                    yield ChildResult(None, f"accuracy: {type(cause).__name__}: {cause}"[:300])
                    continue
                except ray.exceptions.RayError as exc:  # retries exhausted: worker kept dying
                    done.add(k)
                    yield ChildResult(
                        None,
                        f"accuracy: worker lost after {self.max_retries} "
                        f"retries: {type(exc).__name__}"[:300],
                    )
                    continue
                self.worker_pids.add(pid)
                source.record(a, res)
                done.add(k)
                yield ChildResult(res, "", dt)
        finally:
            for k, r in pending.items():
                if k not in done:
                    ray.cancel(r)

    def device_measure(self, profile, precision):
        ray = self.ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = ray.get_runtime_context().get_node_id()
        actor = (
            ray.remote(num_cpus=0)(DeviceMeasurer)
            .options(scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False))
            .remote(profile, precision)
        )

        def measure(arch: Arch) -> float:
            try:
                return ray.get(actor.measure.remote(arch))
            except ray.exceptions.RayTaskError as exc:
                raise (getattr(exc, "cause", None) or exc) from None

        def close() -> None:
            try:
                ray.get(actor.close.remote())
            finally:
                ray.kill(actor)

        return measure, close

    def close(self) -> None:
        self._source_refs.clear()
        if self._owns_ray and self.ray.is_initialized():
            self.ray.shutdown()  # a local Ray started for this run ends with it


EXECUTORS: dict[str, type[Executor]] = {"serial": SerialExecutor, "ray": RayExecutor}


def make_executor(
    workers: int | None = None,
    address: str | None = None,
    cpus_per_child: float = 1,
    gpus_per_child: float = 0,
) -> Executor:
    """Serial unless Ray is asked for (--ray-workers N or --ray-address)."""
    if workers is None and not address:
        if gpus_per_child:
            raise InputError("needs Ray (--ray-workers N or --ray-address)", "--gpus-per-child")
        return SerialExecutor()
    return RayExecutor(
        workers=workers,
        address=address,
        cpus_per_child=cpus_per_child,
        gpus_per_child=gpus_per_child,
    )
