"""The analysis notebooks in notebooks/ run headless on results the CLI writes.

A module-scoped fixture generates a small LUT, calibration, validation report and
search run with the `latbench` command line (tiny search space), then each notebook
is executed with nbclient, pointed at those files through its environment
variables. A notebook that raises fails the test; so does one that does not save
its figures or whose printed summary disagrees with the CSV files.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
NOTEBOOK_NAMES = ("lut_explorer.ipynb", "predictor_accuracy.ipynb", "search_run.ipynb")
# What a notebook may import from latbench: public, documented entry points only.
PUBLIC_IMPORTS = {
    "from latbench.profiling.lut import LUT",
    "from latbench.nets.load import arch_from_dict",
    "from latbench.nets.spaces import get_space",
}

nbformat = pytest.importorskip("nbformat")


def _code_cells(name: str):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    return nb, [c for c in nb.cells if c.cell_type == "code"]


# ---- static checks (fast) --------------------------------------------------------------


@pytest.mark.parametrize("name", NOTEBOOK_NAMES)
def test_committed_notebook_is_stripped_and_parametrised(name):
    nb, cells = _code_cells(name)
    nbformat.validate(nb)
    for i, c in enumerate(cells):
        assert c.outputs == [], f"{name}: code cell {i} has outputs; strip them before commit"
        assert c.execution_count is None, f"{name}: code cell {i} has an execution count"
    first = cells[0]
    assert "parameters" in first.metadata.get("tags", []), f"{name}: no parameters cell"
    assert "os.environ.get(" in first.source and "LATBENCH_NB_OUT" in first.source
    for c in cells:
        for line in c.source.splitlines():
            s = line.strip()
            if "latbench" in s and (s.startswith("import ") or s.startswith("from ")):
                assert s in PUBLIC_IMPORTS, f"{name}: {s!r} is not a public latbench API"


# ---- executing them on generated data (slow) -------------------------------------------


def _cli(*args: str, timeout: int = 1200, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "latbench.commands.main", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    assert proc.returncode == 0, f"latbench {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def _read_records(path: Path):
    """A latbench CSV (LUT or network file) read with plain pandas: drop `# ` header lines."""
    import pandas as pd

    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("# ")]
    return pd.read_csv(io.StringIO("\n".join(lines)))


@pytest.fixture(scope="module")
def generated(tiny_pipeline):
    """A tiny LUT, calibration and validate report, made by the CLI (shared with test_e2e_cli)."""
    return {k: tiny_pipeline[k] for k in ("root", "lut", "nets", "validate", "env")}


# A short search on the tiny space: one batch of four samples, two of them spot-checked on
# the device, proxy accuracy from one epoch on 256 Fashion-MNIST images. No zoo baselines:
# their layers are not in the tiny LUT.
SEARCH_ARGS = (
    "search",
    "--space",
    "tiny",
    "--target-ms",
    "0.3",
    "--samples",
    "4",
    "--batch",
    "4",
    "--proxy-train",
    "256",
    "--proxy-epochs",
    "1",
    "--baselines",
    "",
    "--spot-every",
    "2",
    "--seed",
    "0",
    "--no-progress",
)


@pytest.fixture(scope="module")
def search_run(generated):
    """A search run directory written by `latbench search` (on the generated predictor)."""
    from latbench.commands.main import cli

    if "search" not in cli.commands:
        pytest.skip("this checkout has no `latbench search` command")
    run_dir = generated["root"] / "search"
    lut_dir = str(generated["lut"].parent)  # its spot checks time on the pipeline's host
    _cli(*SEARCH_ARGS, "--lut-dir", lut_dir, "--out", str(run_dir), env=generated["env"])
    return run_dir


@contextlib.contextmanager
def _environ(env: dict[str, str]):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _kernel_name() -> str:
    """The venv's python3 kernel (installed into the venv when the spec is missing)."""
    from jupyter_client.kernelspec import KernelSpecManager

    if "python3" not in KernelSpecManager().find_kernel_specs():
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--sys-prefix"],
            check=True,
            capture_output=True,
        )
    return "python3"


def run_notebook(name: str, env: dict[str, str], out_dir: Path) -> str:
    """Execute notebooks/NAME headless; return everything it printed."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = NotebookClient(
        nb,
        timeout=600,
        kernel_name=_kernel_name(),
        resources={"metadata": {"path": str(NOTEBOOKS)}},
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    with _environ({**env, "LATBENCH_NB_OUT": str(out_dir), "MPLBACKEND": "Agg"}):
        try:
            client.execute()
        except CellExecutionError as exc:
            nbformat.write(nb, out_dir / f"failed_{name}")
            pytest.fail(
                f"{name} raised while running (executed copy: "
                f"{out_dir / ('failed_' + name)}):\n{str(exc)[-4000:]}"
            )
    text = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            assert o.output_type != "error", f"{name}: {o.ename}: {o.evalue}"
            if o.output_type == "stream" and o.name == "stdout":
                text.append(o.text)
    return "".join(text)


def assert_pngs(out_dir: Path, names: list[str]) -> None:
    """Each figure was saved, is a real PNG of some size, and is not a blank canvas."""
    import matplotlib.image as mpimg

    for n in names:
        p = out_dir / f"{n}.png"
        assert p.exists(), f"{p.name} was not saved; saved: {sorted(os.listdir(out_dir))}"
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert p.stat().st_size > 10_000, f"{p.name} is only {p.stat().st_size} bytes"
        img = mpimg.imread(p)
        assert img.shape[0] > 200 and img.shape[1] > 300
        assert img[..., :3].std() > 0.02, f"{p.name} is blank"


@pytest.mark.slow
def test_lut_explorer(generated, tmp_path):
    out = tmp_path / "lut_explorer"
    stdout = run_notebook("lut_explorer.ipynb", {"LATBENCH_LUT": str(generated["lut"])}, out)
    assert_pngs(out, ["latency_vs_flops", "costliest_layers", "kernel_se_by_stage"])

    table = _read_records(generated["lut"])
    ok = table[table.status == "ok"]
    top = ok.loc[ok.median_ms.idxmax()]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers_ok"] == len(ok) > 100
    assert summary["layers_failed"] == int((table.status != "ok").sum())
    assert summary["total_ms"] == pytest.approx(ok.median_ms.sum(), rel=1e-9)
    assert summary["costliest_key"] == top.key
    assert summary["costliest_ms"] == pytest.approx(top.median_ms, rel=1e-9)
    assert sum(summary["kinds"].values()) == len(ok)
    # The tiny space has every block with kernel 3 and 5, with and without SE.
    assert summary["k5_over_k3_pairs"] > 0 and summary["se_pairs"] > 0
    assert summary["k5_over_k3_latency_ratio"] > 1.0
    assert f"LUT: {len(ok)} ok layers" in stdout
    assert f"costliest layer: {top.key} " in stdout


@pytest.mark.slow
def test_predictor_accuracy(generated, tmp_path):
    out = tmp_path / "predictor_accuracy"
    env = {"LATBENCH_VALIDATE": str(generated["validate"]), "LATBENCH_NETS": str(generated["nets"])}
    stdout = run_notebook("predictor_accuracy.ipynb", env, out)
    assert_pngs(out, ["predicted_vs_measured", "error_by_size"])
    assert not (out / "zoo_errors.png").exists()  # calibrated with --no-zoo: no zoo rows

    import pandas as pd

    held = pd.read_csv(generated["validate"] / "heldout.csv")
    reported = json.loads((generated["validate"] / "metrics.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["heldout"] == len(held) > 0
    assert summary["size"] == "mmacs"  # sizes came from the networks file's arch column
    from latbench.calibration.calibrate import make_predictors

    assert set(summary["mape"]) == set(make_predictors())
    for k, m in summary["mape"].items():
        mape = float(((held[f"{k}_ms"] - held.measured_ms).abs() / held.measured_ms).mean() * 100)
        assert m == pytest.approx(mape, rel=1e-9)
        assert m == pytest.approx(reported[k]["mape"], rel=1e-6)
        assert f"MAPE {k}: {mape:.4f} %" in stdout
    assert summary["best"] == min(summary["mape"], key=summary["mape"].get)
    assert summary["zoo"] == 0
    assert "zoo networks: 0" in stdout


@pytest.mark.slow
def test_predictor_accuracy_with_zoo_rows(generated, tmp_path):
    """The zoo section, on a report whose zoo.csv has rows (the CLI's column layout)."""
    import pandas as pd

    vdir = tmp_path / "validate"
    shutil.copytree(generated["validate"], vdir)
    held = pd.read_csv(vdir / "heldout.csv").head(3)
    zoo = pd.DataFrame(
        {
            "name": ["mobilenet_v2_1.0", "mnasnet_a1", "mobilenet_v3_small"],
            "measured_ms": held.measured_ms.values,
        }
    )
    for k in ("flops", "lut", "regression"):
        zoo[f"{k}_ms"] = held[f"{k}_ms"].values
        zoo[f"{k}_err_pct"] = (zoo[f"{k}_ms"] - zoo.measured_ms) / zoo.measured_ms * 100
    zoo.to_csv(vdir / "zoo.csv", index=False)
    out = tmp_path / "out"
    # Without the networks file: network size falls back to measured latency.
    stdout = run_notebook(
        "predictor_accuracy.ipynb", {"LATBENCH_VALIDATE": str(vdir), "LATBENCH_NETS": ""}, out
    )
    assert_pngs(out, ["predicted_vs_measured", "error_by_size", "zoo_errors"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["zoo"] == 3 and summary["size"] == "measured_ms"
    assert "zoo networks: 3" in stdout


@pytest.mark.slow
def test_search_run(search_run, tmp_path):
    import pandas as pd

    out = tmp_path / "search_run"
    stdout = run_notebook("search_run.ipynb", {"LATBENCH_SEARCH_RUN": str(search_run)}, out)
    assert_pngs(out, ["reward_over_samples", "pareto_front", "architectures"])

    samples = pd.read_csv(search_run / "samples.csv", dtype={"digest": str})
    pareto = pd.read_csv(search_run / "pareto.csv", dtype={"digest": str})
    summary = json.loads((out / "summary.json").read_text())
    assert summary["samples"] == len(samples) == 4
    assert summary["best_reward"] == pytest.approx(samples.reward.max(), rel=1e-12)
    assert summary["best_sample"] == int(samples.loc[samples.reward.idxmax(), "sample"])
    # The notebook's own Pareto front agrees with the one the search wrote.
    assert summary["pareto_samples"] == sorted(int(s) for s in pareto["sample"])
    assert summary["pareto_size"] == len(pareto) > 0
    n_archs = len(list((search_run / "pareto").glob("*.arch.json"))) + len(
        list((search_run / "best").glob("*.json"))
    )
    assert summary["archs_drawn"] == min(n_archs, 6) > 0
    assert summary["baselines"] == []
    assert summary["spot_checks"] == int((samples.pred_ms.notna() & samples.meas_ms.notna()).sum())
    assert f"samples: {len(samples)} " in stdout
    assert f"pareto front: {len(pareto)} networks (pareto.csv: {len(pareto)})" in stdout


@pytest.mark.slow
def test_search_run_with_baselines(search_run, tmp_path):
    """The zoo baselines on the Pareto plot, from a baselines.json in the CLI's layout."""
    import pandas as pd

    run_dir = tmp_path / "run"
    shutil.copytree(search_run, run_dir)
    samples = pd.read_csv(run_dir / "samples.csv")
    base = [
        {
            "name": "mobilenet_v2_x1",
            "accuracy": float(samples.accuracy.max()),
            "pred_ms": 0.25,
            "meas_ms": None,
            "lat_ms": 0.25,
            "train_s": 1.0,
        },
        {
            "name": "mnasnet_small",
            "accuracy": float(samples.accuracy.min()),
            "pred_ms": 0.1,
            "meas_ms": 0.11,
            "lat_ms": 0.1,
            "train_s": 1.0,
        },
    ]
    (run_dir / "baselines.json").write_text(json.dumps(base, indent=2))
    out = tmp_path / "out"
    stdout = run_notebook(
        "search_run.ipynb", {"LATBENCH_SEARCH_RUN": str(run_dir), "LATBENCH_MAX_ARCHS": "2"}, out
    )
    assert_pngs(out, ["reward_over_samples", "pareto_front", "architectures"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["baselines"] == ["mobilenet_v2_x1", "mnasnet_small"]
    assert summary["archs_drawn"] == 2
    assert "zoo baselines: 2" in stdout
