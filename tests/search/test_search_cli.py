"""Bad input to `latbench search`: each a clear error that says what to do."""

import pytest
from click.testing import CliRunner

from latbench.commands.search import search_command
from latbench.errors import InputError


def invoke(*args):
    return CliRunner().invoke(search_command, list(args), catch_exceptions=True)


def test_new_run_needs_target_and_out(tmp_path):
    r = invoke("--out", str(tmp_path / "a"))
    assert isinstance(r.exception, InputError) and "--target-ms" in str(r.exception)
    r = invoke("--target-ms", "8")
    assert isinstance(r.exception, InputError) and "--out" in str(r.exception)


def test_missing_debian_dataset(tmp_path):
    r = invoke("--target-ms", "8", "--out", str(tmp_path / "a"), "--data-dir", str(tmp_path))
    assert isinstance(r.exception, InputError)
    assert "apt-get install dataset-fashion-mnist" in str(r.exception)


def test_empty_image_folder(tmp_path):
    (tmp_path / "imgs").mkdir()
    r = invoke(
        "--target-ms",
        "8",
        "--out",
        str(tmp_path / "a"),
        "--dataset",
        "folder",
        "--data-dir",
        str(tmp_path / "imgs"),
    )
    assert isinstance(r.exception, InputError) and "sub-folder" in str(r.exception)


def test_resume_of_a_non_run(tmp_path):
    r = invoke("--resume", str(tmp_path))
    assert isinstance(r.exception, InputError) and "start one with --out" in str(r.exception)


def test_half_explicit_reward_exponents(tmp_path):
    r = invoke("--target-ms", "8", "--out", str(tmp_path / "a"), "--alpha", "-0.1")
    assert isinstance(r.exception, InputError) and "--beta" in str(r.exception)


@pytest.mark.parametrize("missing_lut", [True])
def test_lut_mode_without_a_lut_says_which_command(tmp_path, missing_lut):
    r = invoke(
        "--target-ms", "8", "--out", str(tmp_path / "a"), "--lut-dir", str(tmp_path / "nolut")
    )
    assert isinstance(r.exception, InputError)
    assert "latbench" in str(r.exception)  # names the command that builds the LUT


def test_resume_warns_when_the_latency_model_changed(tmp_path):
    from latbench.search.job import check_latency_model

    logged = []
    check_latency_model(tmp_path, {"predictor": "lut", "lut": "a"}, logged.append)
    check_latency_model(tmp_path, {"predictor": "lut", "lut": "a"}, logged.append)
    assert logged == []
    check_latency_model(tmp_path, {"predictor": "regression", "lut": "a"}, logged.append)
    assert len(logged) == 1 and "latency model changed" in logged[0]
    assert "latency model changed" in (tmp_path / "events.log").read_text()


@pytest.mark.slow
def test_search_with_workers_runs_children_on_ray_and_times_on_the_device(tmp_path):
    pytest.importorskip("ray")
    from latbench.proxy.data import FASHION_MNIST_DIR
    from latbench.search.run import read_samples

    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("apt-get install dataset-fashion-mnist")
    out = tmp_path / "run"
    r = invoke(
        "--space",
        "tiny",
        "--latency",
        "device",
        "--device",
        "host",
        "--target-ms",
        "5",
        "--samples",
        "2",
        "--batch",
        "2",
        "--proxy-train",
        "256",
        "--proxy-epochs",
        "1",
        "--baselines",
        "",
        "--ray-workers",
        "2",
        "--no-progress",
        "--out",
        str(out),
    )
    assert r.exception is None, r.output
    rows = read_samples(out / "samples.csv")
    assert len(rows) == 2 and all(0 < x["accuracy"] <= 1 and x["meas_ms"] > 0 for x in rows)
    import ray

    assert not ray.is_initialized()  # the local Ray started for the run is gone


def test_a_flops_target_is_given_in_millions_of_macs(tmp_path):
    r = invoke("--latency", "flops", "--target-ms", "8", "--out", str(tmp_path / "a"))
    assert isinstance(r.exception, InputError) and "--target-mmacs" in str(r.exception)
    r = invoke("--target-mmacs", "300", "--out", str(tmp_path / "a"))
    assert isinstance(r.exception, InputError) and "--target-mmacs" in str(r.exception)


def test_the_flops_source_is_the_networks_macs_and_needs_no_lut_or_device():
    from latbench.nets import zoo
    from latbench.search.job import latency_source
    from latbench.search.run import SearchConfig

    cfg = SearchConfig(target_ms=300.0, alpha=-0.07, beta=-0.07, latency="flops", device="nowhere")
    src, identity = latency_source(cfg, "no-lut-dir", None)
    b0 = zoo.get("efficientnet_b0")
    assert src.predict([b0])[0] == pytest.approx(b0.macs() / 1e6)
    assert 380 < src.predict([b0])[0] < 420  # EfficientNet-B0: 0.39 B FLOPS (MACs) published
    assert src.measure is None and identity["latency"] == "flops"


def test_a_bad_evaluator_is_refused_before_the_search_starts(tmp_path):
    r = invoke("--target-ms", "8", "--out", str(tmp_path / "a"), "--evaluator", "no.such:fn")
    assert isinstance(r.exception, InputError) and "--evaluator" in str(r.exception)
    assert not (tmp_path / "a").exists()  # nothing started
