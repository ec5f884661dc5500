"""TensorFlow's import banner is dropped; anything else said during the import is kept."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from latbench.quiet import filtered_stderr

REPO = Path(__file__).resolve().parents[1]


def test_known_banner_lines_are_dropped_and_the_rest_is_replayed(capfd):
    with filtered_stderr():
        os.write(
            2,
            b"WARNING: All log messages before absl::InitializeLog() is called are "
            b"written to STDERR\n",
        )
        os.write(
            2,
            b"I0000 00:00:1795495493.641436 5166 port.cc:153] oneDNN custom operations "
            b"are on. You may see slightly different numerical results\n",
        )
        os.write(
            2,
            b"fully_quantize: 0, inference_type: 6, input_inference_type: INT8, "
            b"output_inference_type: INT8\n",
        )
        os.write(2, b"ImportError: libfoo.so: cannot open shared object file\n")
        print("a Python warning", file=sys.stderr)
    err = capfd.readouterr().err
    assert sorted(err.splitlines()) == [
        "ImportError: libfoo.so: cannot open shared object file",
        "a Python warning",
    ]


def _run_both(*runs):
    """Run the Python programs (args, env) at once (each starts TensorFlow, seconds of CPU
    apiece: side by side on a machine with two cores); their CompletedProcesses, in order."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", *args],
            cwd=REPO,
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for args, env in runs
    ]
    out = []
    try:
        for p in procs:
            stdout, stderr = p.communicate(timeout=300)
            out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    finally:
        for p in procs:
            p.kill()
            p.wait()
    return out


@pytest.mark.slow
def test_stderr_works_as_before_after_the_import():
    code = (
        "import sys\nfrom latbench.quiet import quiet_tensorflow\nquiet_tensorflow()\n"
        "import tensorflow as tf\nprint('after', file=sys.stderr)\n"
        "print(int(tf.constant(2) + 1))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_")}
    r, verbose = _run_both(([code], env), ([code], {**env, "LATBENCH_TF_VERBOSE": "1"}))
    assert r.returncode == 0 and r.stdout == "3\n" and r.stderr == "after\n"
    assert "oneDNN" in verbose.stderr  # the filter is what removes it (a test that can fail)


_RETRACE = """
import sys
if sys.argv[1] == "quiet":
    from latbench.quiet import quiet_tensorflow
    quiet_tensorflow()
import tensorflow as tf

for i in range(8):  # as proxy.train.fit does: one new tf.function per network
    def step(x):
        return x * 2.0
    tf.function(step, autograph=False)(tf.constant([float(i)] * (i + 1)))
tf.get_logger().warning("a warning latbench does not cause")
"""


@pytest.mark.slow
def test_tf_function_retracing_warnings_are_dropped_and_other_tf_warnings_kept():
    """Issue 19 item 9: `search` printed `WARNING:tensorflow: ... retracing` lines."""
    loud, quiet = _run_both(([_RETRACE, "loud"], None), ([_RETRACE, "quiet"], None))
    assert loud.returncode == 0 and quiet.returncode == 0, loud.stderr + quiet.stderr
    assert "retracing" in loud.stderr  # the warning is real without the filter
    assert "retracing" not in quiet.stderr and "a warning latbench does not cause" in quiet.stderr
