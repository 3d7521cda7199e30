"""Resumable reconstructions: the runtime continues from a checkpointed iterate
(`iscs_jax.checkpoint.IterateCheckpoints`), and ``python -m sample --resume`` continues a
SIGKILLed run with the same result as an uninterrupted one."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import nibabel as nib
import numpy as np
import pytest

from iscs_jax import checkpoint, operators, runtime
from iscs_jax.denoiser import GaussianDenoiser

ROOT = Path(__file__).resolve().parents[1]
SIGMAS = np.geomspace(5.0, 0.05, 6).astype(np.float32)
CLI = [sys.executable, "-m", "sample", "--config", "ct.py:phantom,smoke",
       "--config.prior.name=gaussian", "--config.prior.resolution=32", "--config.compare=iscs",
       "--config.sampler.steps=8", "--config.checkpoint.every=2"]


def test_a_run_continued_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path):
    op = operators.ParallelBeam((12, 12), tuple(np.linspace(0.1, 3.0, 6)))
    y = np.asarray(op.A(np.random.default_rng(0).random((3, 12, 12)).astype(np.float32)))
    recon = runtime.Reconstructor(op, GaussianDenoiser(0.5, 0.3), sigmas=SIGMAS, cg_iters=3,
                                  final_denoise=True)
    run, key = recon.prepare(y), jax.random.key(4)
    whole = np.asarray(recon.reconstruct(key, run))
    store = checkpoint.IterateCheckpoints(str(tmp_path / "ck"), every=2)
    saved = []

    def stop_after_four(steps_done, x):
        saved.append(store.save(steps_done, x))
        if steps_done == 4:
            raise KeyboardInterrupt  # a run killed after its step-4 checkpoint

    with pytest.raises(KeyboardInterrupt):
        recon.reconstruct(key, run, on_iterate=stop_after_four)
    assert saved == [True, True, False, True]  # Orbax saves the first step, then every 2
    steps_done, x = store.restore(recon.iterate_like(run))
    assert steps_done == 4
    resumed = np.asarray(recon.reconstruct(key, run, start=(steps_done, x)))
    np.testing.assert_array_equal(resumed, whole)
    assert store.finished() is None
    store.finish(resumed)
    np.testing.assert_array_equal(store.finished(), whole)


def _cli(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([*CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, **kwargs)


def _volume(stdout: str) -> np.ndarray:
    folder = Path(stdout.strip().splitlines()[-1])
    return np.asarray(nib.load(folder / "recon_iscs.nii.gz").dataobj)


def test_a_sigkilled_cli_run_resumed_equals_the_uninterrupted_run(tmp_path):
    whole = _cli("--workdir", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([*CLI, "--workdir", str(tmp_path / "killed")], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:
        if "checkpointed step 4" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    left = list((tmp_path / "killed" / "ct").iterdir())
    assert len(left) == 1 and left[0].name.startswith(".tmp-")  # the unfinished run

    other = _cli("--workdir", str(tmp_path / "killed"), "--resume", "--config.sampler.steps=9")
    assert other.returncode == 2 and "sampler.steps" in other.stderr, other.stderr
    assert "Traceback" not in other.stderr

    resumed = _cli("--workdir", str(tmp_path / "killed"), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming after step 4 of 8" in resumed.stdout
    np.testing.assert_array_equal(_volume(resumed.stdout), _volume(whole.stdout))
    folders = list((tmp_path / "killed" / "ct").iterdir())
    assert len(folders) == 1 and not folders[0].name.startswith(".tmp-")
    assert not (folders[0] / "checkpoints").exists()


def test_resume_needs_checkpoints_and_an_unfinished_run(tmp_path):
    done = _cli("--workdir", str(tmp_path), "--resume")
    assert done.returncode == 2 and "no unfinished run" in done.stderr
    assert not (tmp_path / "ct").exists()  # nothing written
    off = _cli("--workdir", str(tmp_path), "--resume", "--config.checkpoint.every=0")
    assert off.returncode == 2 and "checkpoint.every" in off.stderr
