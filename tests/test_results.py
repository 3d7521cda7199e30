"""The result folder of ``python -m sample``: early workdir checks, clean failures of the final
write (disk full, permissions, SIGTERM), stale temporary folders, results on the input's grid
and in its units, and the provenance record.

CLI runs use the closed-form ``gaussian`` prior at 32x32 on ``ct.py:phantom,smoke`` (seconds).
"""

import errno
import importlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from iscs_jax import results
from sample.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--config", "ct.py:phantom,smoke", "--config.prior.name=gaussian",
        "--config.prior.resolution=32", "--config.compare=iscs", "--config.sampler.steps=2"]


def cli(capsys, workdir, *extra):
    """Runs the CLI in this process; returns (exit status, stdout, stderr)."""
    status = main([*FAST, "--workdir", str(workdir), *extra])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def one_paragraph(err: str, *words: str) -> None:
    assert err.startswith("error: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    for word in words:
        assert word in err, err


def no_compile(monkeypatch):
    """Fails the test if the run gets as far as loading the prior (before any compilation)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the run went on before the workdir was checked")

    monkeypatch.setattr(importlib.import_module("sample.prior"), "load_prior", refuse)


# --- item 5: fail before the compute, leave nothing half-written -------------------------

def test_result_folder_is_atomic(tmp_path):
    parent = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with results.result_folder(parent) as folder:
            (folder.path / "half.txt").write_text("x")
            raise RuntimeError("boom")
    assert not (tmp_path / "a").exists()
    with results.result_folder(parent) as first:
        (first.path / "x.txt").write_text("x")
    with results.result_folder(parent) as second:
        pass
    assert first.final != second.final and (first.final / "x.txt").exists()
    assert sorted(p.name for p in parent.iterdir()) == sorted([first.final.name,
                                                               second.final.name])


def test_result_folders_finishing_together_get_distinct_names(tmp_path):
    """Runs finishing in the same second (threads here; processes alike) never share a name."""
    from concurrent.futures import ThreadPoolExecutor

    def one_run(i):
        with results.result_folder(tmp_path) as folder:
            (folder.path / "run.txt").write_text(str(i))
        return folder.final

    with ThreadPoolExecutor(8) as pool:
        finals = list(pool.map(one_run, range(16)))
    assert len(set(finals)) == 16
    assert sorted((f / "run.txt").read_text() for f in finals) == sorted(map(str, range(16)))



def test_a_file_in_place_of_the_workdir_exits_2_before_compiling(tmp_path, capsys, monkeypatch):
    no_compile(monkeypatch)
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    for workdir in (blocker, blocker / "deeper"):
        status, _, err = cli(capsys, workdir)
        assert status == 2
        one_paragraph(err, "--workdir", str(blocker), "is a file")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores chmod")
def test_a_read_only_workdir_exits_2_before_compiling(tmp_path, capsys, monkeypatch):
    no_compile(monkeypatch)
    workdir = tmp_path / "ro"
    workdir.mkdir()
    workdir.chmod(0o555)
    try:
        status, _, err = cli(capsys, workdir / "sub")
    finally:
        workdir.chmod(0o755)
    assert status == 2
    one_paragraph(err, "--workdir", str(workdir))
    assert not any(workdir.iterdir())


def test_no_permission_in_the_workdir_exits_2_and_leaves_nothing(tmp_path, capsys, monkeypatch):
    no_compile(monkeypatch)
    real_mkdir = Path.mkdir

    def denied(self, *args, **kwargs):
        if self.parent == tmp_path:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", denied)
    status, _, err = cli(capsys, tmp_path / "results")
    assert status == 2
    one_paragraph(err, "--workdir", str(tmp_path), "Permission denied", "EACCES")
    assert not any(tmp_path.iterdir())


def test_check_workdir_accepts_new_and_existing_folders_and_leaves_nothing(tmp_path):
    results.check_workdir(tmp_path / "a" / "b", tmp_path / "a")
    results.check_workdir(tmp_path, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("where", ["np.save", "os.rename"])
def test_disk_full_during_the_write_is_one_paragraph_and_leaves_nothing(
        tmp_path, capsys, monkeypatch, where):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    module, name = where.split(".")
    monkeypatch.setattr({"np": np, "os": os}[module], name, full)
    status, _, err = cli(capsys, tmp_path)
    monkeypatch.undo()
    assert status == 2
    one_paragraph(err, "No space left on device", "ENOSPC", "--workdir")
    assert not any(tmp_path.iterdir())  # not even the folders the run created


def test_a_checkpointing_run_failing_its_write_is_kept_for_resume(tmp_path, capsys, monkeypatch):
    save = np.save

    def full(file, *args, **kwargs):  # the result files only, not the checkpoints
        if str(file).endswith("measurement.npy"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return save(file, *args, **kwargs)

    monkeypatch.setattr(np, "save", full)
    status, _, err = cli(capsys, tmp_path, "--config.checkpoint.every=1")
    monkeypatch.undo()
    assert status == 2
    one_paragraph(err, "ENOSPC", "--resume")
    kept = list((tmp_path / "ct").iterdir())
    assert len(kept) == 1 and (kept[0] / results.RUN_CONFIG).is_file()
    status, out, _ = cli(capsys, tmp_path, "--config.checkpoint.every=1", "--resume")
    assert status == 0 and "restored" in out
    assert [p.name.startswith(".tmp-") for p in (tmp_path / "ct").iterdir()] == [False]


def test_other_os_errors_are_not_disguised():
    with pytest.raises(FileNotFoundError):
        with results.writing("x"):
            raise FileNotFoundError(errno.ENOENT, "gone")


SIGTERM_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from iscs_jax import results

    parent = Path(sys.argv[1])
    with results.result_folder(parent) as folder:
        (folder.path / "half.nii.gz").write_bytes(b"\\x1f\\x8b truncated")
        with results.writing(parent):
            print(folder.path, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            (folder.path / "never.txt").write_text("x")
    print("not reached", flush=True)
""")


def test_sigterm_during_the_write_removes_the_temporary_folder(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SIGTERM_SCRIPT, str(tmp_path / "ct")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert "not reached" not in done.stdout and "Terminated" in done.stderr
    assert Path(done.stdout.strip()).name.startswith(".tmp-")
    assert not (tmp_path / "ct").exists()  # nothing left, not even the folders it created


RENAME_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from iscs_jax import results

    def terminated_rename(src, dst):  # SIGTERM arrives as the folder gets its final name
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("not reached")

    os.rename = terminated_rename
    with results.result_folder(Path(sys.argv[1])) as folder:
        (folder.path / "metrics.json").write_text("{}")
""")


def test_sigterm_during_the_rename_leaves_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (tmp_path / "ct").mkdir()
    done = subprocess.run([sys.executable, "-c", RENAME_SCRIPT, str(tmp_path / "ct")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert not any((tmp_path / "ct").iterdir())  # neither the temporary nor the claimed name


def test_sigterm_handler_is_restored_after_the_write():
    before = signal.getsignal(signal.SIGTERM)
    with results.writing("x"):
        assert signal.getsignal(signal.SIGTERM) is not before
    assert signal.getsignal(signal.SIGTERM) is before


def _killed_run(parent: Path, pid: int, host: str | None = None) -> Path:
    folder = parent / f".tmp-20260101-000000-{pid}@{host or results.host()}-0123abcd"
    folder.mkdir(parents=True)
    (folder / "recon_iscs.nii.gz").write_bytes(b"truncated")
    return folder


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def test_a_stale_temporary_folder_is_removed_by_the_next_run(tmp_path, capsys):
    parent = tmp_path / "ct"
    stale = _killed_run(parent, _dead_pid())
    alive = _killed_run(parent, os.getppid())  # a running process: reported, kept
    elsewhere = _killed_run(parent, 1, host="otherhost")  # another machine's: reported, kept
    resumable = _killed_run(parent, _dead_pid() + 1)
    (resumable / results.RUN_CONFIG).write_text("{}")
    status, out, err = cli(capsys, tmp_path)
    assert status == 0, err
    assert not stale.exists() and f"removed {stale}" in out
    assert alive.exists() and elsewhere.exists() and resumable.exists()
    assert f"{resumable} is an unfinished run" in out and "--resume" in out
    assert f"{alive} is the unfinished result folder of another run" in out
    finished = [p for p in parent.iterdir() if not p.name.startswith(".tmp-")]
    assert len(finished) == 1 and (finished[0] / "metrics.json").is_file()


# --- item 4: results on the input's grid and in its units ---------------------------------

def _smooth_volume(shape):
    d, h, w = np.meshgrid(*(np.linspace(0.0, 1.0, n) for n in shape), indexing="ij")
    return (np.sin(2.0 * d + 1.0) * np.cos(1.5 * h) + 0.5 * w ** 2).astype(np.float32)


@pytest.mark.parametrize("plane, resolution", [("axial", 32), ("axial", 96), ("coronal", 48)])
def test_prepared_planes_back_on_the_input_grid_are_close(plane, resolution):
    from iscs_jax.data import prepare

    volume = _smooth_volume((24, 40, 56))
    affine = np.diag([0.7, 0.9, 2.5, 1.0])
    affine[:3, 3] = (-10.0, 4.0, 30.0)
    settings = dict(resolution=resolution, plane=plane, start=1, count=4 if plane == "axial"
                    else 30, window="none")
    planes, _ = prepare.prepare_volume(volume, affine, **settings)
    grid = prepare.input_grid(volume, affine, **settings)
    expected, expected_affine = prepare.select_planes(volume, affine, plane, 1,
                                                      settings["count"])
    back = prepare.to_input_grid(planes, grid)
    assert back.shape == expected.shape == grid.shape
    np.testing.assert_array_equal(grid.affine, expected_affine)
    inner = [slice(2, -2)] * 3  # the edges mix with the square's padding
    inner[prepare.PLANES[plane][0]] = slice(None)  # (the stack axis is not resampled)
    inner = tuple(inner)
    assert np.abs(back - expected)[inner].max() < 0.01 * np.ptp(volume)
    assert np.abs(back - expected).mean() < 0.01 * np.ptp(volume)


def test_the_window_is_undone_in_the_input_units():
    from iscs_jax.data import prepare

    hu = np.linspace(-1000.0, 1600.0, 6 * 8 * 8, dtype=np.float32).reshape(6, 8, 8)
    window, window_range, floor = prepare.intensity_window("hu", -1000.0, 1600.0)
    planes, _ = prepare.prepare_volume(hu, np.eye(4), resolution=8, window=window,
                                       window_range=window_range, floor=floor)
    grid = prepare.input_grid(hu, np.eye(4), resolution=8, window=window,
                              window_range=window_range, floor=floor)
    assert grid.window_range == (-1000.0, 1600.0)
    np.testing.assert_allclose(prepare.to_input_units(planes, grid), hu, atol=0.05)
    np.testing.assert_allclose(prepare.to_input_units(np.float32(0.1), grid, offset=False), 260.0)
    scaled = prepare.input_grid(hu * 0.5, np.eye(4), resolution=8, window="minmax")
    assert scaled.window_range == (-500.0, 800.0)
    assert prepare.input_grid(hu, np.eye(4), resolution=8, window="none").window_range is None


def _nifti(path, volume, affine):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.asarray(volume).transpose(2, 1, 0), affine), path)


def _read(path):
    import nibabel as nib

    image = nib.load(path)
    return np.asarray(image.dataobj, np.float32).transpose(2, 1, 0), image.affine


def test_results_on_the_input_grid_in_hu(tmp_path, capsys):
    _, y, x = np.meshgrid(np.arange(5), np.linspace(-1, 1, 40), np.linspace(-1, 1, 48),
                          indexing="ij")
    body = 40.0 + 200.0 * np.cos(3 * x) * np.sin(2 * y)
    hu = np.where(x ** 2 + y ** 2 < 0.3, body, -1000.0).astype(np.float32)  # body in air
    affine = np.diag([0.8, 0.7, 2.0, 1.0])
    affine[:3, 3] = (-20.0, -15.0, 7.0)
    _nifti(tmp_path / "scan.nii.gz", hu, affine)
    args = [f"--config.data.path={tmp_path / 'scan.nii.gz'}", "--config.data.slice_start=1",
            "--config.data.num_slices=3"]
    status, out, err = cli(capsys, tmp_path / "prior", *args)
    assert status == 0, err
    prior_folder = Path(out.strip().splitlines()[-1])
    status, out, err = cli(capsys, tmp_path / "input", *args, "--config.data.output_grid=input",
                           "--config.data.output_units=input")
    assert status == 0, err
    folder = Path(out.strip().splitlines()[-1])
    gt, gt_affine = _read(folder / "gt.nii.gz")
    expected_affine = affine.copy()
    expected_affine[:3, 3] += affine[:3, 2]  # slice_start=1
    assert gt.shape == (3, 40, 48)
    np.testing.assert_allclose(gt_affine, expected_affine, atol=1e-5)
    inner = (slice(None), slice(2, -2), slice(2, -2))
    assert np.abs(gt - hu[1:4])[inner].mean() < 40.0  # HU, after 48 -> 32 -> 48 resampling
    recon, recon_affine = _read(folder / "recon_iscs.nii.gz")
    np.testing.assert_array_equal(recon_affine, gt_affine)
    unit, _ = _read(prior_folder / "recon_iscs.nii.gz")
    assert unit.shape == (3, 32, 32) and 0.0 <= unit.mean() <= 1.0
    from iscs_jax.data import prepare

    grid = prepare.InputGrid((3, 40, 48), gt_affine, "axial", (-1000.0, 1600.0))
    back = prepare.to_input_units(prepare.to_input_grid(unit, grid), grid)
    np.testing.assert_allclose(recon, back, atol=0.05)  # the same run, written back in HU
    assert recon.mean() < -100.0  # mostly air
    metrics = [json.loads((f / "metrics.json").read_text()) for f in (folder, prior_folder)]
    assert metrics[0]["iscs"]["psnr"] == metrics[1]["iscs"]["psnr"]  # on the prior's grid


def test_bad_output_options_exit_2_before_the_compute(tmp_path, capsys, monkeypatch):
    no_compile(monkeypatch)
    status, _, err = cli(capsys, tmp_path, "--config.data.output_grid=native")
    assert status == 2
    one_paragraph(err, "data.output_grid='native'", "prior", "input")
    assert not any(tmp_path.iterdir())


def test_provenance_records_versions_devices_prior_command_and_config(tmp_path, capsys):
    import hashlib

    import jax

    from iscs_jax import priors
    from iscs_jax import provenance
    from sample import prior

    status, out, err = cli(capsys, tmp_path)
    assert status == 0, err
    folder = Path(out.strip().splitlines()[-1])
    record = json.loads((folder / "provenance.json").read_text())
    assert record["package"]["name"] == "iscs-jax" and record["package"]["version"]
    assert record["jax"] == jax.__version__ and record["jaxlib"]
    assert record["devices"]["platform"] == "cpu" and record["devices"]["count"] >= 1
    assert record["prior"] == {"name": "gaussian", "files": []}
    assert record["config"] == json.loads((folder / "config.json").read_text())
    assert record["command"] == sys.argv and record["executable"] == sys.executable
    config = types_config(prior_name="phantom64")
    files = prior.prior_files(config.prior)
    stem = priors.resolve("phantom64")
    assert files == [Path(stem + ".json"), Path(stem + ".msgpack")]
    assert provenance.sha256(files[1]) == hashlib.sha256(files[1].read_bytes()).hexdigest()


def types_config(prior_name):
    import ml_collections

    return ml_collections.ConfigDict({"prior": {"name": prior_name, "path": ""}})
