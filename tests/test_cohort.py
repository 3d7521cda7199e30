"""Tests of cohort evaluation: `metrics.paired_difference` against scipy, the expansion of
``data.path`` into volumes (sample/cohort.py), and ``python -m sample`` on a folder of three
volumes with two seeds writing summary.json."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import test_dicom
from iscs_jax import io, metrics
from sample import cohort
from sample.errors import UserError

A = np.array([31.2, 30.8, 29.9, 32.4, 31.0, 30.1])
B = np.array([30.9, 30.9, 29.1, 31.8, 30.2, 30.0])


def test_paired_difference_matches_scipy_paired_t_interval():
    result = metrics.paired_difference(A, B)
    interval = stats.ttest_rel(A, B).confidence_interval(0.95)
    assert result["n"] == 6
    np.testing.assert_allclose(result["mean"], np.mean(A - B), rtol=1e-12)
    np.testing.assert_allclose(result["ci95"], [interval.low, interval.high], rtol=1e-10)
    assert result["ci95"][0] < result["mean"] < result["ci95"][1]


def test_paired_difference_edge_cases():
    assert metrics.paired_difference([2.0], [1.5]) == {"mean": 0.5, "ci95": [None, None], "n": 1}
    same = metrics.paired_difference([1.0, 2.0, 3.0], [0.0, 1.0, 2.0])
    np.testing.assert_allclose(same["ci95"], [1.0, 1.0])
    with pytest.raises(ValueError, match="equally long"):
        metrics.paired_difference([1.0, 2.0], [1.0])


def _entry(psnr, discontinuity=0.1):
    planes = {plane: {"psnr": psnr, "ssim": psnr / 100} for plane in metrics.PLANES}
    return {"psnr": psnr, "ssim": psnr / 100, "discontinuity": discontinuity, "seconds": 1.0,
            **planes}


def test_cohort_summary_means_over_seeds_and_pairs_over_volumes_x_seeds():
    assert metrics.method_pairs(["fbp", "iid", "iscs"], ["iid", "iscs"]) == [
        ("iscs", "iid"), ("iid", "fbp"), ("iscs", "fbp")]
    results = {name: {seed: (f"{name}/seed_{seed}",
                             {"fbp": _entry(20.0), "iid": _entry(a), "iscs": _entry(b, None)})
                      for seed, (a, b) in enumerate(pairs)}
               for name, pairs in {"v0": [(30.0, 31.0), (32.0, 32.5)],
                                   "v1": [(29.0, 30.5), (31.0, 31.0)]}.items()}
    summary = metrics.cohort_summary([("v0", None), ("v1", None)], results, [0, 1],
                                     ["iid", "iscs"])
    assert summary["volumes"][0]["metrics"]["iid"]["psnr"] == 31.0
    assert summary["volumes"][1]["runs"] == {"0": "v1/seed_0", "1": "v1/seed_1"}
    paired = summary["paired"]["iscs-iid"]
    expected = metrics.paired_difference([31.0, 32.5, 30.5, 31.0], [30.0, 32.0, 29.0, 31.0])
    assert paired["psnr"] == expected and paired["axial"]["psnr"] == expected
    assert paired["discontinuity"] is None  # missing in iscs: no statistic
    assert "iscs-iid" in metrics.format_paired(summary["paired"])


def test_parse_seeds():
    assert cohort.parse_seeds("") == []
    assert cohort.parse_seeds("0, 1,2") == [0, 1, 2]
    for bad in ("0,a", "1,1"):
        with pytest.raises(UserError, match="seeds="):
            cohort.parse_seeds(bad)


def hu_like(seed: int, depth: int = 4, size: int = 32) -> np.ndarray:
    """``[depth, size, size]`` HU: air around a water disc with a brighter core."""
    _, y, x = np.mgrid[:depth, :size, :size]
    radius = np.hypot(y - size / 2, x - size / 2)
    volume = np.where(radius < size / 3 - seed, 40.0, -1000.0)
    volume = np.where(radius < size / 8, 400.0 + 50 * np.arange(depth)[:, None, None], volume)
    return (volume + np.random.default_rng(seed).normal(0, 10, volume.shape)).astype(np.float32)


def write_volumes(folder: Path, count: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"vol{i}.nii.gz" for i in range(count)]
    for i, path in enumerate(paths):
        io.write_nifti(path, hu_like(i), np.diag([1.0, 1.0, 2.0, 1.0]))
    return paths


def test_a_folder_of_niftis_and_a_glob_expand_sorted(tmp_path):
    paths = write_volumes(tmp_path / "scans")
    (tmp_path / "scans" / "README.txt").write_text("not a volume")
    expected = [(f"vol{i}", p) for i, p in enumerate(paths)]
    assert cohort.expand_path(str(tmp_path / "scans")) == expected
    assert cohort.expand_path(str(tmp_path / "scans" / "*.nii.gz")) == expected
    assert cohort.expand_path(str(tmp_path / "scans" / "vol[02].nii.gz")) == expected[::2]
    assert cohort.expand_path(str(paths[0])) is None  # one file: run.run as before
    assert cohort.expand_path("") is None


def test_a_dicom_series_folder_stays_one_volume_and_series_subfolders_are_volumes(tmp_path):
    test_dicom.write_series(tmp_path / "study" / "SE1", test_dicom.hu_volume(3, 1))
    test_dicom.write_series(tmp_path / "study" / "SE2", test_dicom.hu_volume(3, 2))
    write_volumes(tmp_path / "study", count=1)
    assert cohort.expand_path(str(tmp_path / "study" / "SE1")) is None
    assert cohort.expand_path(str(tmp_path / "study")) == [
        ("SE1", tmp_path / "study" / "SE1"), ("SE2", tmp_path / "study" / "SE2"),
        ("vol0", tmp_path / "study" / "vol0.nii.gz")]


def test_an_empty_folder_or_glob_is_a_one_paragraph_error_exit_2(tmp_path, capsys):
    from sample.__main__ import main

    (tmp_path / "empty" / "sub").mkdir(parents=True)
    for path in (tmp_path / "empty", tmp_path / "empty" / "*.nii.gz"):
        with pytest.raises(UserError, match="data.path="):
            cohort.expand_path(str(path))
    argv = ["--config", "ct.py:smoke", f"--config.data.path={tmp_path / 'empty'}",
            "--workdir", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: data.path=") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists()


def test_a_bad_volume_is_named_before_any_compute(tmp_path, capsys):
    from sample.__main__ import main

    paths = write_volumes(tmp_path / "scans")
    io.write_nifti(paths[1], (hu_like(1) + 1000.0) / 2600.0, np.eye(4))  # already in [0, 1]
    argv = ["--config", "ct.py:smoke", f"--config.data.path={tmp_path / 'scans'}",
            "--config.prior.name=gaussian", "--config.prior.resolution=32",
            "--workdir", str(tmp_path / "out")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: Volume 'vol1' of the cohort:"), captured.err
    assert "== volume" not in captured.out
    assert not (tmp_path / "out").exists()


def test_one_volume_one_seed_is_run_run_itself(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(cohort.run_lib, "run", lambda *a, **k: calls.append((a, k)) or "dir")
    from sample import cli

    config, _ = cli.load_config("ct.py:smoke")
    assert cohort.run(config, "ct", tmp_path) == "dir"
    assert calls[0][0] == (config, "ct", tmp_path)


def test_cli_folder_of_three_volumes_two_seeds_writes_summary(tmp_path, capsys):
    from sample.__main__ import main

    write_volumes(tmp_path / "scans")
    argv = ["--config", "ct.py:smoke", f"--config.data.path={tmp_path / 'scans'}",
            "--config.seeds=0,1", "--config.prior.name=gaussian",
            "--config.prior.resolution=32", "--workdir", str(tmp_path / "out")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    folder = Path(out.strip().splitlines()[-1])
    assert folder.parent == tmp_path / "out" / "ct"
    assert "paired differences over 3 volume(s) x 2 seed(s)" in out
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["seeds"] == [0, 1] and summary["methods"] == ["fbp", "iid", "iscs"]
    assert [v["name"] for v in summary["volumes"]] == ["vol0", "vol1", "vol2"]
    for volume in summary["volumes"]:
        runs = {seed: json.loads((folder / run / "metrics.json").read_text())
                for seed, run in volume["runs"].items()}
        assert sorted(runs) == ["0", "1"]
        for method in summary["methods"]:
            mean = np.mean([runs[s][method]["psnr"] for s in runs])
            np.testing.assert_allclose(volume["metrics"][method]["psnr"], mean, rtol=1e-6)
            assert set(volume["metrics"][method]) >= {"psnr", "ssim", "discontinuity", "axial"}
    assert set(summary["paired"]) == {"iscs-iid", "iid-fbp", "iscs-fbp"}
    tables = [json.loads((folder / run / "metrics.json").read_text())
              for volume in summary["volumes"] for run in volume["runs"].values()]
    for pair, stats_ in summary["paired"].items():
        a, b = pair.split("-")
        expected = metrics.paired_difference([t[a]["psnr"] for t in tables],
                                             [t[b]["psnr"] for t in tables])
        assert stats_["psnr"] == expected and expected["n"] == 6
        lo, hi = stats_["coronal"]["ssim"]["ci95"]
        assert lo <= stats_["coronal"]["ssim"]["mean"] <= hi
        assert set(stats_["discontinuity"]) == {"mean", "ci95", "n"}
    seed_config = json.loads((folder / "vol1" / "seed_1" / "config.json").read_text())
    assert seed_config["seed"] == 1 and seed_config["data"]["path"].endswith("vol1.nii.gz")
