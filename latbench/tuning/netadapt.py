"""NetAdapt (Yang et al., ECCV 2018) as MobileNetV3 used it: layer-wise channel tuning to a latency target.

Starting from a seed network, each step makes one proposal per thing that can
shrink - one block's expansion (mid) channels, or the output channels of a
group of blocks tied together by residual connections - each shrunk by
multiples of 8 channels until its *predicted* latency is at least `delta` (1 %)
below the current network's. Every proposal inherits the current network's
weights (truncated, `train.inherit`), is fine-tuned briefly on the proxy task
and is scored by MobileNetV3's metric, accuracy change per latency change
(`ratio`), or NetAdapt's original one, accuracy alone (`accuracy`). The best
becomes the current network, its latency is also measured end to end on the
device, and the loop repeats until the target is met; the result is then
trained longer.

Layers never seen before (new channel counts) are profiled on demand
(`OnDemandLatency`), so the LUT grows with the run. Every step is written
before the next starts (`state.json`, `steps.csv`, `current.npz`), so Ctrl-C
loses at most the step in flight and `--resume` goes on from there.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from latbench.errors import InputError
from latbench.nets.arch import Arch, make_divisible
from latbench.nets.load import arch_from_dict
from latbench.proxy.recipe import ProxyRecipe

# NetAdapt's proxy task: the network keeps its own channels (width 1.0) at 32 px; the
# config's fields and the command's option defaults both come from here.
PROXY = ProxyRecipe(resolution=32, width=1.0, train_images=3000, val_images=2000)

METRICS = ("ratio", "accuracy")
STEP_COLUMNS = (
    "step",
    "proposal",
    "kind",
    "blocks",
    "channels_before",
    "channels_after",
    "predicted_ms",
    "measured_ms",
    "accuracy",
    "score",
    "chosen",
    "train_s",
)


@dataclass(frozen=True)
class NetAdaptConfig:
    target_ms: float
    delta: float = 0.01  # each proposal cuts predicted latency by at least this share
    metric: str = "ratio"  # ratio: d(acc)/|d(lat)| (MobileNetV3) | accuracy (NetAdapt)
    channel_step: int = 8
    min_channels: int = 8
    max_steps: int = 100
    proxy_resolution: int = PROXY.resolution
    train_images: int = PROXY.train_images
    val_images: int = PROXY.val_images
    pretrain_epochs: float = 3.0  # the seed, from scratch, before the first step
    finetune_epochs: float = 0.5  # each proposal, from inherited weights
    long_epochs: float = 6.0  # the result, at the end
    lr: float = 3e-3  # training from scratch (the seed; the result's comparison run)
    finetune_lr: float = 5e-4  # from inherited weights: a fresh Adam at 3e-3 undoes them
    seed: int = 0
    measure: bool = True  # time the chosen network of each step end to end
    evaluator: str | None = None  # a user's evaluator (MODULE:FUNCTION) fine-tunes instead

    def __post_init__(self) -> None:
        if self.target_ms <= 0:
            raise InputError(f"must be > 0, got {self.target_ms}", "--target-ms")
        if not 0 < self.delta < 1:
            raise InputError(f"must be in (0, 1), got {self.delta}", "--delta")
        if self.metric not in METRICS:
            raise InputError(f"must be one of {METRICS}, got {self.metric!r}", "--metric")
        if self.channel_step < 1 or self.min_channels < 1:
            raise InputError("channel step and minimum must be >= 1", "--channel-step")


# ---------------------------------------------------------------------------
# proposals: pure functions on Arch
# ---------------------------------------------------------------------------


def bake_width(arch: Arch) -> Arch:
    """The same network written at width 1.0 (every filter count explicit), so one channel is one."""
    if arch.width == 1.0:
        return arch
    f = arch.filters
    blocks = tuple(
        replace(b, in_filters=f(b.in_filters), out_filters=f(b.out_filters)) for b in arch.blocks
    )
    head = replace(
        arch.head,
        filters=f(arch.head.filters) if arch.head.scale else arch.head.filters,
        scale=True,
    )
    return replace(
        arch,
        width=1.0,
        stem=replace(arch.stem, filters=f(arch.stem.filters)),
        blocks=blocks,
        head=head,
    )


def residual_groups(arch: Arch) -> list[list[int]]:
    """Blocks whose output channels must stay equal: a block whose first layer is residual
    (skip, stride 1, in == out) shares its input's channels with the block before it."""
    groups: list[list[int]] = []
    for i, b in enumerate(arch.blocks):
        tied = i > 0 and b.skip and b.stride == 1 and b.in_filters == b.out_filters
        if tied and groups:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def block_mid(arch: Arch, i: int) -> int:
    """The expansion channels of block i's first layer."""
    b = arch.blocks[i]
    return make_divisible(b.in_filters * b.expand, 8) if b.expand != 1 else b.in_filters


def shrink_mid(arch: Arch, i: int, channels: int) -> Arch | None:
    """Block i with its first layer's expansion channels set to `channels` (None if impossible).

    The expansion ratio becomes channels / in_filters (written with 4
    significant digits, as LUT keys are), and must stay above 1 so the 1x1
    expansion conv remains (a ratio of 1 removes it: another op, not fewer channels).
    """
    b = arch.blocks[i]
    if b.op != "mbconv" or b.expand == 1 or channels <= b.in_filters:
        return None
    e = float(format(channels / b.in_filters, ".4g"))
    if e <= 1 or make_divisible(b.in_filters * e, 8) != channels:
        return None
    blocks = list(arch.blocks)
    blocks[i] = replace(b, expand=e)
    return replace(arch, blocks=tuple(blocks))


def shrink_out(arch: Arch, group: Sequence[int], channels: int) -> Arch | None:
    """The blocks of one residual group with `channels` outputs (the next block's input follows)."""
    if channels < 1:
        return None
    blocks = list(arch.blocks)
    for i in group:
        b = blocks[i]
        tied_in = i != group[0]
        blocks[i] = replace(
            b, out_filters=channels, in_filters=channels if tied_in else b.in_filters
        )
    nxt = group[-1] + 1
    if nxt < len(blocks):
        blocks[nxt] = replace(blocks[nxt], in_filters=channels)
    return replace(arch, blocks=tuple(blocks))


@dataclass
class Proposal:
    kind: str  # "mid" | "out"
    blocks: tuple[int, ...]
    before: int  # channels before
    after: int
    arch: Arch
    predicted_ms: float = float("nan")
    accuracy: float = float("nan")
    score: float = float("nan")
    train_s: float = 0.0

    @property
    def label(self) -> str:
        where = ",".join(str(b) for b in self.blocks)
        return f"{self.kind}[{where}] {self.before}->{self.after}"


def _shrunk(arch: Arch, kind: str, blocks: tuple[int, ...], channels: int) -> Arch | None:
    return (
        shrink_mid(arch, blocks[0], channels)
        if kind == "mid"
        else shrink_out(arch, blocks, channels)
    )


def proposals(
    arch: Arch, cur_ms: float, cfg: NetAdaptConfig, predict: Callable[[Sequence[Arch]], "object"]
) -> list[Proposal]:
    """One proposal per mid/out choice, each shrunk just enough to cut `delta` of the latency.

    All proposals step down together (8, 16, ... channels), so each round's
    unseen layers are profiled in one batch.
    """
    goal = cur_ms * (1 - cfg.delta)
    open_: list[tuple[str, tuple[int, ...], int]] = []  # kind, blocks, channels now
    for i in range(len(arch.blocks)):
        if arch.blocks[i].op == "mbconv" and arch.blocks[i].expand != 1:
            open_.append(("mid", (i,), block_mid(arch, i)))
    for g in residual_groups(arch):
        open_.append(("out", tuple(g), arch.blocks[g[-1]].out_filters))
    done: list[Proposal] = []
    k = 1
    while open_:
        batch = []
        for kind, blocks, before in open_:
            after = before - k * cfg.channel_step
            a = _shrunk(arch, kind, blocks, after) if after >= cfg.min_channels else None
            # a mid size that make_divisible cannot express: try the next step down
            while (
                a is None
                and kind == "mid"
                and after - cfg.channel_step > arch.blocks[blocks[0]].in_filters
            ):
                after -= cfg.channel_step
                a = _shrunk(arch, kind, blocks, after)
            if a is not None:
                batch.append(Proposal(kind, blocks, before, after, a))
        if not batch:
            break
        lat = predict([p.arch for p in batch])
        still = []
        for p, ms in zip(batch, lat):
            p.predicted_ms = float(ms)
            if p.predicted_ms <= goal:
                done.append(p)
            else:
                still.append((p.kind, p.blocks, p.before))
        open_ = still
        k += 1
    return done


def score(p: Proposal, cur_acc: float, cur_ms: float, metric: str) -> float:
    if metric == "accuracy":
        return p.accuracy
    return (p.accuracy - cur_acc) / max(cur_ms - p.predicted_ms, 1e-9)


# ---------------------------------------------------------------------------
# the run: training, checkpoints, outputs
# ---------------------------------------------------------------------------


class NetAdaptRun:
    """One NetAdapt run in `out_dir`; `run()` resumes from whatever the directory holds."""

    def __init__(
        self,
        out_dir: Path,
        cfg: NetAdaptConfig,
        seed_arch: Arch,
        latency,
        dataset,
        log: Callable[[str], None] = print,
        progress: bool = True,
    ):
        from latbench.proxy.accuracy import ProxyEvaluator
        from latbench.proxy.evaluator import load_evaluator, use_threads

        self.out = Path(out_dir)
        self.cfg = cfg
        self.latency = latency  # OnDemandLatency (predict, measure, predictor_name)
        self.log = log
        self.progress = progress
        recipe = replace(
            PROXY,
            resolution=cfg.proxy_resolution,
            train_images=cfg.train_images,
            val_images=cfg.val_images,
            seed=cfg.seed,
        )
        self.recipe = recipe
        self.seed_arch = bake_width(seed_arch)
        self.evaluator = None
        if cfg.evaluator:  # the user's evaluator trains, on the user's data
            use_threads(recipe.threads)
            self.evaluator = load_evaluator(cfg.evaluator, cfg.seed)
            return
        data = ProxyEvaluator(dataset, recipe)  # the search's split and preprocessing
        self.classes, self.channels = data.classes, data.channels
        self.x_train, self.y_train = data.x_train, data.y_train
        self.x_val, self.y_val = data.x_val, data.y_val

    # -- proxy training -------------------------------------------------------
    def _proxy(self, arch: Arch) -> Arch:
        from latbench.proxy.accuracy import proxy_arch

        return proxy_arch(arch, self.recipe, self.classes, self.channels)

    def _train(self, arch: Arch, parent, epochs: float):
        """(accuracy, weights, seconds): `arch` on the proxy task, from `parent` weights or scratch."""
        import keras

        from latbench.proxy import train

        t0 = time.monotonic()
        keras.backend.clear_session()
        keras.utils.set_random_seed(self.cfg.seed)
        ev = self.evaluator
        trained = ev.network(arch) if ev is not None else self._proxy(arch)
        model = train.build(trained)
        if parent is not None:
            train.inherit(model, parent)
        if ev is not None:
            return self._user_train(ev, arch, trained, model, parent is not None, epochs, t0)
        lr = self.cfg.lr if parent is None else self.cfg.finetune_lr
        settings = train.TrainSettings(epochs=epochs, lr=lr, seed=self.cfg.seed)
        train.fit(model, self.x_train, self.y_train, settings)
        train.recalibrate_bn(model, self.x_train)
        acc = train.accuracy(model, self.x_val, self.y_val)
        weights = train.get_weights(model)
        return acc, weights, time.monotonic() - t0

    def _user_train(self, ev, arch: Arch, trained: Arch, model, pretrained, epochs, t0):
        """The user's evaluator trains `model` in place (from inherited weights when
        `pretrained`: fine-tuning) for `epochs / long_epochs` of its full training."""
        from latbench.proxy import train
        from latbench.proxy.evaluator import Network, check_result

        net = Network(
            arch.to_dict(),
            trained.to_dict(),
            model,
            seed=self.cfg.seed,
            fidelity=epochs / self.cfg.long_epochs,
            threads=self.recipe.threads,
            pretrained=pretrained,
        )
        acc, _ = check_result(ev(net), f"evaluator {ev.name}")
        return acc, train.get_weights(model), time.monotonic() - t0

    # -- state -----------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.out / "state.json"

    def _save_state(self, state: dict, weights) -> None:
        from latbench.fileio import write_atomic
        from latbench.proxy import train

        train.save_weights(self.out / "current.npz", weights)
        write_atomic(self.state_path, (json.dumps(state, indent=2) + "\n").encode())

    def _load_state(self):
        from latbench.fileio import load_json
        from latbench.proxy import train

        state = load_json(self.state_path, "NetAdapt state")
        _check_state(state, self.state_path)
        state["config"] = {"evaluator": None, **state["config"]}  # runs from before it
        if state["config"] != json.loads(json.dumps(asdict(self.cfg))):
            diffs = sorted(
                k for k in state["config"] if state["config"][k] != asdict(self.cfg).get(k)
            )
            raise InputError(
                f"{self.out} was started with other settings ({', '.join(diffs)}); "
                f"use another --out or the same options"
            )
        return state, train.load_weights(self.out / "current.npz")

    def _append_rows(
        self, step: int, props: Sequence[Proposal], chosen: Proposal | None, measured: float | None
    ) -> None:
        from latbench import records

        path = self.out / "steps.csv"
        records.open_for_append(path, {"kind": "netadapt-steps"}, STEP_COLUMNS)
        for p in props:
            records.append(
                path,
                [
                    step,
                    p.label,
                    p.kind,
                    " ".join(map(str, p.blocks)),
                    p.before,
                    p.after,
                    f"{p.predicted_ms:.4f}",
                    f"{measured:.4f}" if p is chosen and measured is not None else "",
                    f"{p.accuracy:.4f}",
                    f"{p.score:.6g}",
                    int(p is chosen),
                    f"{p.train_s:.1f}",
                ],
            )

    # -- the loop -----------------------------------------------------------------
    def run(self) -> dict:
        """Run (or resume) to the target, holding the run folder's lock (`fileio.hold_lock`)."""
        from latbench.fileio import hold_lock

        self.out.mkdir(parents=True, exist_ok=True)
        with hold_lock(self.out, f"NetAdapt run {self.out}"):
            return self._run()

    def _run(self) -> dict:
        from latbench.nets.arch import save_arch

        cfg = self.cfg
        if self.state_path.exists():
            state, weights = self._load_state()
            try:
                cur = arch_from_dict(state["arch"])
            except InputError as exc:
                raise InputError(f"NetAdapt state {self.state_path}: arch: {exc}") from None
            self.log(f"resuming {self.out} at step {state['step']}")
        else:
            seed = self.seed_arch
            seed_ms = float(self.latency.predict([seed])[0])
            self.log(
                f"seed {seed.name}: predicted {seed_ms:.3f} ms, target {cfg.target_ms:.3f} ms; "
                f"training the seed on the proxy task ({cfg.pretrain_epochs:g} epochs)"
            )
            acc, weights, secs = self._train(seed, None, cfg.pretrain_epochs)
            measured = self.latency.measure(seed) if cfg.measure else None
            state = {
                "config": asdict(cfg),
                "step": 0,
                "arch": seed.to_dict(block_strings=False),
                "accuracy": acc,
                "predicted_ms": seed_ms,
                "measured_ms": measured,
                "seed": {
                    "name": seed.name,
                    "accuracy": acc,
                    "predicted_ms": seed_ms,
                    "measured_ms": measured,
                },
                "status": "running",
                "started": time.time(),
                "wall_s": secs,
            }
            p0 = Proposal("seed", (), 0, 0, seed, seed_ms, acc, float("nan"), secs)
            self._append_rows(0, [p0], p0, measured)
            self._save_state(state, weights)
            cur = seed
        t_start = time.monotonic() - state.get("wall_s", 0.0)
        while state["status"] == "running":
            cur_ms, cur_acc = state["predicted_ms"], state["accuracy"]
            if cur_ms <= cfg.target_ms:
                state["status"] = "target met"
                break
            if state["step"] >= cfg.max_steps:
                state["status"] = "max steps"
                break
            step = state["step"] + 1
            props = proposals(cur, cur_ms, cfg, self.latency.predict)
            if not props:
                state["status"] = "unreachable"
                break
            self.log(
                f"step {step}: {cur_ms:.3f} ms, accuracy {cur_acc:.4f}; "
                f"fine-tuning {len(props)} proposal(s)"
            )
            trained = {}
            for p in props:
                p.accuracy, w, p.train_s = self._train(p.arch, weights, cfg.finetune_epochs)
                p.score = score(p, cur_acc, cur_ms, cfg.metric)
                trained[id(p)] = w
                self.log(
                    f"  {p.label:24} {p.predicted_ms:8.3f} ms  acc {p.accuracy:.4f}  "
                    f"score {p.score:+.5f}"
                )
            best = max(props, key=lambda p: (p.score, -p.predicted_ms))
            measured = self.latency.measure(best.arch) if cfg.measure else None
            self._append_rows(step, props, best, measured)
            cur, weights = best.arch, trained[id(best)]
            state.update(
                step=step,
                arch=cur.to_dict(block_strings=False),
                accuracy=best.accuracy,
                predicted_ms=best.predicted_ms,
                measured_ms=measured,
                wall_s=time.monotonic() - t_start,
            )
            self._save_state(state, weights)
            self.log(
                f"  -> {best.label}: {best.predicted_ms:.3f} ms"
                + (f" (measured {measured:.3f} ms)" if measured is not None else "")
            )
        if "final" not in state:
            state["final"] = self._finish(cur, weights, state)
            state["wall_s"] = time.monotonic() - t_start
            self._save_state(state, weights)
        final_arch = replace(cur, name=f"{self.seed_arch.name}_netadapt")
        save_arch(final_arch, self.out / "final.json")
        self._plot()
        return state

    def _finish(self, cur: Arch, weights, state: dict) -> dict:
        """Train the result longer (from its weights, and from scratch like the seed)."""
        cfg = self.cfg
        self.log(f"{state['status']}: training the result longer ({cfg.long_epochs:g} epochs)")
        tuned, _, _ = self._train(cur, weights, cfg.long_epochs)
        scratch, _, _ = self._train(cur, None, cfg.long_epochs)
        seed_long, _, _ = self._train(self.seed_arch, None, cfg.long_epochs)
        measured = self.latency.measure(cur) if cfg.measure else None
        return {
            "predicted_ms": state["predicted_ms"],
            "measured_ms": measured,
            "accuracy_tuned": tuned,
            "accuracy_scratch": scratch,
            "seed_accuracy_scratch": seed_long,
            "predictor": self.latency.predictor_name(),
        }

    def _plot(self) -> None:
        from latbench import records

        path = self.out / "steps.csv"
        if not path.exists():
            return
        _, rows = records.read(path, STEP_COLUMNS)
        from latbench.plotting import pyplot, save_figure

        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6.4, 4.4))
        allp = [r for r in rows if r["kind"] != "seed"]
        ax.scatter(
            [float(r["predicted_ms"]) for r in allp],
            [float(r["accuracy"]) for r in allp],
            s=10,
            c="0.7",
            label="proposals (fine-tuned)",
        )
        ch = [r for r in rows if r["chosen"] == "1"]
        ax.plot(
            [float(r["predicted_ms"]) for r in ch],
            [float(r["accuracy"]) for r in ch],
            "o-",
            c="C0",
            label="chosen per step",
        )
        ax.axvline(self.cfg.target_ms, ls="--", c="C3", label=f"target {self.cfg.target_ms:.2f} ms")
        ax.set_xlabel("predicted latency (ms)")
        ax.set_ylabel("proxy accuracy")
        ax.set_title("NetAdapt: accuracy against latency over the steps")
        ax.legend(fontsize=8)
        fig.tight_layout()
        save_figure(fig, self.out / "netadapt.png", dpi=110)


def _check_state(state: Any, path: Path) -> None:
    """The fields of state.json that a resume uses, checked for type and range."""

    def num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) < 1e9

    checks = {
        "config": lambda v: isinstance(v, dict),
        "step": lambda v: isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 10**6,
        "arch": lambda v: isinstance(v, dict),
        "accuracy": lambda v: num(v) and 0 <= v <= 1,
        "predicted_ms": lambda v: num(v) and v > 0,
        "status": lambda v: isinstance(v, str),
    }
    if not isinstance(state, dict):
        raise InputError(f"NetAdapt state {path}: expected a JSON object")
    for k, ok in checks.items():
        if k not in state or not ok(state[k]):
            raise InputError(
                f"NetAdapt state {path}: field {k!r} is missing or out of range "
                f"({str(state.get(k))[:60]})"
            )
    if "wall_s" in state and not (num(state["wall_s"]) and state["wall_s"] >= 0):
        raise InputError(f"NetAdapt state {path}: field 'wall_s' must be a number >= 0")
