"""End-to-end tests of ``python -m sample`` on ``:smoke`` settings.

Every run uses the closed-form ``gaussian`` prior at 32x32 (no shipped weights
needed), 4 slices and 3 steps; runs in this process share one compilation of
the sampler. One success and one failure also run as real subprocesses.
"""

import json
import types
from pathlib import Path

import jax
import jax.numpy as jnp
import nibabel as nib
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

import test_io
from iscs_jax import io, operators
from iscs_jax.data import phantom, prepare
from sample import cli, inputs, prior
from sample.__main__ import main
from sample.errors import UserError
from device_checks import local_address, run_check, run_processes, run_python

REPO = Path(__file__).resolve().parents[1]
RESOLUTION = 32
FAST = ["--config.prior.name=gaussian", f"--config.prior.resolution={RESOLUTION}"]
HU_MIN, HU_MAX = -1000.0, 1600.0  # the configs' default window


def smoke(workdir, *extra, config="ct.py:phantom,smoke"):
    return ["--config", config, *FAST, "--workdir", str(workdir), *extra]


def run_ok(capsys, argv):
    """Runs the CLI in this process; returns (result folder, stdout)."""
    assert main(argv) == 0
    out = capsys.readouterr().out
    folder = Path(out.strip().splitlines()[-1])
    assert folder.is_dir()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".tmp")]
    return folder, out


def run_fails(capsys, argv, *messages):
    """Runs the CLI expecting a user error; returns stderr."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    for message in messages:
        assert message in captured.err, captured.err
    assert "Traceback" not in captured.err and captured.err.startswith("error: ")
    return captured.err


def load(folder, name):
    image = nib.load(folder / name)
    return np.asarray(image.dataobj).transpose(2, 1, 0), image.affine


def world(affine, ijk):
    return (affine @ np.append(np.asarray(ijk, float), 1.0))[:3]


def test_default_phantom_smoke(tmp_path, capsys):
    folder, out = run_ok(capsys, smoke(tmp_path))
    assert folder.parent == tmp_path / "ct"
    names = {p.name for p in folder.iterdir()}
    assert {"recon_iid.nii.gz", "recon_iscs.nii.gz", "gt.nii.gz", "fbp.nii.gz", "measurement.npy",
            "metrics.json", "config.json", "figure.png"} <= names
    gt, affine = load(folder, "gt.nii.gz")
    np.testing.assert_allclose(gt, phantom.phantom_volume(1234, (4, RESOLUTION, RESOLUTION)),
                               atol=1e-6)
    np.testing.assert_allclose(affine, np.diag([-1.0, -1.0, -1.0, 1.0]))  # the phantom's LPI
    operator = operators.ParallelBeam((RESOLUTION, RESOLUTION), operators.sparse_view_angles(20))
    np.testing.assert_allclose(np.load(folder / "measurement.npy"), operator.A(jnp.asarray(gt)),
                               rtol=1e-4, atol=1e-4)
    table = json.loads((folder / "metrics.json").read_text())
    assert list(table) == ["fbp", "iid", "iscs"]
    for name, entry in table.items():
        assert set(entry) == {"psnr", "ssim", "discontinuity", "seconds", "axial", "coronal",
                              "sagittal"}
        assert set(entry["coronal"]) == {"psnr", "ssim"} and entry["seconds"] >= 0
        volume = load(folder, "fbp.nii.gz" if name == "fbp" else f"recon_{name}.nii.gz")[0]
        assert entry["psnr"] == pytest.approx(
            peak_signal_noise_ratio(gt, volume, data_range=1.0), abs=0.05)
    iid, iscs = load(folder, "recon_iid.nii.gz")[0], load(folder, "recon_iscs.nii.gz")[0]
    assert np.abs(iid - iscs).max() > 1e-4  # different noise controls, same key
    for row in ("fbp", "iid", "iscs"):
        assert any(line.startswith(row) for line in out.splitlines())
    config = json.loads((folder / "config.json").read_text())
    assert config["sampler"]["steps"] == 3 and config["prior"]["name"] == "gaussian"
    # Each run was driven step by step from Python (the progress bar counted every step once).
    for kind in ("iid", "iscs"):
        assert f"sampled {kind} 1/1: 3 steps in " in out
    assert config["sampler"]["chunk_size"] == 2


def test_nifti_input_keeps_affine_after_resize_and_slice_range(tmp_path, capsys):
    depth, height, width = 7, 40, 48
    affine = np.array([[-0.8, 0, 0, 30.0], [0, 0.9, 0, -20.0], [0, 0, 2.0, 5.0], [0, 0, 0, 1]])
    coef = np.array([9.0, -7.0, 4.0])  # HU, linear in world millimetres

    def hu_at(ijk):
        return 200.0 + coef @ world(affine, ijk)

    hu = np.array([[[hu_at((w, h, d)) for w in range(width)] for h in range(height)]
                   for d in range(depth)])
    io.write_nifti(tmp_path / "scan.nii.gz", hu, affine)
    folder, _ = run_ok(capsys, smoke(tmp_path / "out", f"--config.data.path={tmp_path}/scan.nii.gz",
                                     "--config.data.slice_start=2",
                                     "--config.data.check_intensity=False"))  # a ramp, no air
    for name in ("gt.nii.gz", "fbp.nii.gz", "recon_iscs.nii.gz"):
        volume, out_affine = load(folder, name)
        assert volume.shape == (4, RESOLUTION, RESOLUTION)
        # Slices are padded to a square (40 -> 48 rows, 4 on each side) before the resize,
        # which keeps the aspect ratio: both in-plane spacings grow by 48 / 32.
        np.testing.assert_allclose(io.voxel_spacing(out_affine),
                                   [0.8 * width / RESOLUTION, 0.9 * width / RESOLUTION, 2.0])
        # The field of view is kept: the outer voxel corner lands where it was (slice 2 on).
        np.testing.assert_allclose(world(out_affine, (-0.5, -0.5, 0)),
                                   world(affine, (-0.5, -0.5 - (width - height) / 2, 2)),
                                   atol=1e-9)
    gt, out_affine = load(folder, "gt.nii.gz")
    # Interior voxels of a ramp: the antialiased resize is exact up to the discretised kernel
    # (< 0.5 HU here); a half-voxel error in the affine would be off by > 5 HU (2e-3).
    for d, h, w in [(0, 10, 12), (3, 20, 5), (1, 25, 27)]:
        expected = (200.0 + coef @ world(out_affine, (w, h, d)) - HU_MIN) / (HU_MAX - HU_MIN)
        assert gt[d, h, w] == pytest.approx(expected, abs=6e-4)


def test_dicom_series_input(tmp_path, capsys):
    rng = np.random.default_rng(3)
    hu = np.round(rng.uniform(-900, 1500, size=(4, RESOLUTION, RESOLUTION)) / 2) * 2
    test_io.write_dicom_series(tmp_path / "series", hu)
    folder, _ = run_ok(capsys, smoke(tmp_path / "out", f"--config.data.path={tmp_path}/series",
                                     "--config.compare=iscs"))
    gt, affine = load(folder, "gt.nii.gz")
    np.testing.assert_allclose(gt, (hu - HU_MIN) / (HU_MAX - HU_MIN), atol=1e-6)
    np.testing.assert_allclose(affine, io.read_dicom_series(tmp_path / "series")[1])
    assert set(json.loads((folder / "metrics.json").read_text())) == {"fbp", "iscs"}


def _single_slice_inputs(tmp_path, hu):
    """The same one-slice HU image as a NIfTI file, a DICOM file and a one-image DICOM folder."""
    test_io.write_dicom_series(tmp_path / "one", hu[None])
    nifti = tmp_path / "one.nii.gz"
    io.write_nifti(nifti, hu[None], np.eye(4))
    return {"nifti": nifti, "dicom file": next((tmp_path / "one").glob("*.dcm")),
            "dicom folder": tmp_path / "one"}


def test_single_slice_inputs_reconstruct_in_2d(tmp_path, capsys):
    rng = np.random.default_rng(5)
    hu = np.round(rng.uniform(-900, 1500, size=(RESOLUTION, RESOLUTION)) / 2) * 2
    for name, path in _single_slice_inputs(tmp_path, hu).items():
        folder, out = run_ok(capsys, smoke(tmp_path / name.replace(" ", "_"),
                                           f"--config.data.path={path}",
                                           "--config.data.num_slices=0"))
        gt, _ = load(folder, "gt.nii.gz")
        np.testing.assert_allclose(gt, (hu[None] - HU_MIN) / (HU_MAX - HU_MIN), atol=1e-6,
                                   err_msg=name)
        table = json.loads((folder / "metrics.json").read_text())
        for method in ("fbp", "iid", "iscs"):
            assert table[method]["discontinuity"] is None, name
            assert table[method]["axial"]["psnr"] > 0
        iscs_row = next(line for line in out.splitlines() if line.startswith("iscs"))
        assert iscs_row.split()[-2] == "-"  # the discontinuity column


def test_num_samples_writes_mean_and_std(tmp_path, capsys):
    folder, _ = run_ok(capsys, smoke(tmp_path, "--config.num_samples=2", "--config.compare=",
                                     "--config.noise.kind=iid"))
    std, _ = load(folder, "std_iid.nii.gz")
    assert std.shape == (4, RESOLUTION, RESOLUTION) and std.min() >= 0 and std.max() > 1e-4
    assert set(json.loads((folder / "metrics.json").read_text())) == {"fbp", "iid"}


def test_measured_sinogram_without_reference(tmp_path, capsys):
    operator = operators.ParallelBeam((RESOLUTION, RESOLUTION), operators.sparse_view_angles(20))
    volume = phantom.phantom_volume(7, (4, RESOLUTION, RESOLUTION))
    np.save(tmp_path / "y.npy", np.asarray(operator.A(jnp.asarray(volume))))
    folder, out = run_ok(capsys, smoke(tmp_path / "out", f"--config.data.sinogram={tmp_path}/y.npy",
                                       "--config.compare=iscs"))
    assert not (folder / "gt.nii.gz").exists()
    assert json.loads((folder / "metrics.json").read_text())["iscs"].keys() == {"seconds"}
    np.save(tmp_path / "bad.npy", np.ones((4, 19, 45)))
    run_fails(capsys, smoke(tmp_path / "out2", f"--config.data.sinogram={tmp_path}/bad.npy"),
              "geometry needs", "num_views")


def _nifti(path, data):
    nib.save(nib.Nifti1Image(np.asarray(data, np.float32), np.eye(4)), path)
    return f"--config.data.path={path}"


def _bad_inputs(tmp):
    rng = np.random.default_rng(0)
    nan = rng.normal(size=(32, 32, 4))
    nan[3, 4, 1] = np.nan
    inf = rng.normal(size=(32, 32, 4))
    inf[0, 0, 0] = np.inf
    return {
        "missing": ([f"--config.data.path={tmp}/missing.nii.gz"], ["does not exist"]),
        "2d": ([_nifti(tmp / "a.nii", rng.normal(size=(32, 32)))], ["2 dimension", "3D volume"]),
        "4d": ([_nifti(tmp / "b.nii", rng.normal(size=(32, 32, 4, 2)))], ["4 dimension"]),
        "nan": ([_nifti(tmp / "c.nii", nan)], ["1 NaN or infinite", "nan_to_num"]),
        "inf": ([_nifti(tmp / "d.nii", inf)], ["1 NaN or infinite"]),
        "empty": ([_nifti(tmp / "e.nii", np.zeros((32, 32, 0)))], ["empty"]),
        "constant": ([_nifti(tmp / "f.nii", np.full((32, 32, 4), 5.0))], ["constant"]),
        "windowed constant": ([_nifti(tmp / "g.nii", rng.uniform(-3000, -2000, (32, 32, 4)))],
                              ["after the intensity window", "constant"]),
        "unknown key": (["--config.sampler.stepz=3"], ["'sampler.stepz'", "sampler.steps",
                                                       "Valid keys", "data.path"]),
        "bad type": (["--config.sampler.steps=many"], ["config.sampler.steps", "int"]),
        "resolution": ([_nifti(tmp / "h.nii", rng.normal(size=(40, 40, 4))),
                        "--config.data.resize=False"], ["40x40", "32x32", "data.resize=True"]),
        "zero views": (["--config.operator.num_views=0"], ["num_views=0", "positive"]),
        "negative views": (["--config.operator.num_views=-3"], ["num_views=-3"]),
        "angle range 0": (["--config.operator.range_degrees=0"], ["(0, 180]"]),
        "angle range 200": (["--config.operator.range_degrees=200"], ["(0, 180]"]),
        "unknown config": (["--config", "nope.py"], ["'nope.py'", "ct.py", "lact.py"]),
        "noise kind": (["--config.compare=iid,bogus"], ["bogus", "iscs"]),
        "sampler settings": (["--config.sampler.eta=1.5", "--config.sampler.fbp_filter=box"],
                             ["sampler.eta=1.5", "'box'", "ramp"]),
        "sampler name": (["--config.sampler.name=ddim"], ["sampler.name='ddim'", "admm_tv"]),
        "renamed key": (["--config.sampler.mode=ddim"], ["'sampler.mode' was renamed",
                                                         "sampler.renoise"]),
        "own settings": (["--config.sampler.name=admm_tv", "--config.sampler.admm_tv.mu=0"],
                         ["sampler.admm_tv", "mu > 0"]),
        "prior kind": (["--config.prior.kind=bogus"], ["prior.kind='bogus'", "'score_sde'"]),
        "prior kind mismatch": (["--config.prior.path=phantom64", "--config.prior.kind=score_sde"],
                                ["'ve_score' prior", "'edm'", "prior.kind=auto"]),
        "pth without kind": ([f"--config.prior.path={tmp}/ckpt.pth"],
                             ["PyTorch checkpoint", "prior.kind=score_sde"]),
    }


BAD_INPUTS = ("missing", "2d", "4d", "nan", "inf", "empty", "constant", "windowed constant",
              "unknown key", "bad type", "resolution", "zero views", "negative views",
              "angle range 0", "angle range 200", "unknown config", "noise kind",
              "sampler settings", "sampler name", "renamed key", "own settings", "prior kind",
              "prior kind mismatch", "pth without kind")


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_paragraph_and_leaves_nothing(tmp_path, capsys, case):
    cases = _bad_inputs(tmp_path)
    assert set(cases) == set(BAD_INPUTS)
    extra, messages = cases[case]
    workdir = tmp_path / "results"
    run_fails(capsys, smoke(workdir, *extra, config="lact.py:phantom,smoke"), *messages)
    assert not workdir.exists()


def test_verbose_shows_the_exception(tmp_path):
    with pytest.raises(UserError, match="num_views"):
        main(smoke(tmp_path, "--config.operator.num_views=0", "--verbose"))


def test_prior_channel_and_resolution_checks():
    three = types.SimpleNamespace(channels=3, resolution=64)
    with pytest.raises(UserError, match="'rgb' models 3-channel"):
        prior.check_prior(three, name="rgb")
    grey = types.SimpleNamespace(channels=1, resolution=(64, 64), metadata={})
    prior.check_prior(grey, resolution=64)
    with pytest.raises(UserError, match="data.resize=True"):
        prior.check_prior(grey, resolution=32)
    assert prior.slice_size(grey) == 64


def test_config_resolution_and_overrides(tmp_path):
    config, name = cli.load_config("ct.py:smoke")
    assert name == "ct" and config.sampler.steps == 3
    assert 16 <= cli.load_config("ct")[0].operator.num_views <= 30
    lact = cli.load_config(str(REPO / "configs" / "lact.py"))[0]
    assert lact.operator.geometry == "limited_angle" and lact.operator.range_degrees in (90, 120)
    args = cli.parse_args(["--config=ct.py", "--config.sampler.steps", "50",
                           "--config.data.resize=false", "--config.sde.sigma_max=7",
                           "--workdir", str(tmp_path), "-v"])
    assert args.config.sampler.steps == 50 and args.config.data.resize is False
    assert args.config.sde.sigma_max == 7.0 and args.workdir == str(tmp_path) and args.verbose
    defaults = cli.load_config("ct.py")[0]
    assert defaults.prior.name == "chest128" and defaults.compare == "iid,iscs"
    assert defaults.data.path == "" and defaults.data.embedded == "chest_ct"
    phantom_config = cli.load_config("ct.py:phantom,smoke")[0]
    assert (phantom_config.prior.name, phantom_config.data.embedded) == ("phantom64", "phantom")
    assert phantom_config.sampler.steps == 3
    with pytest.raises(UserError, match="phantom"):
        cli.load_config("ct.py:fast")
    assert defaults.sde.sigma_max == 5 and defaults.sampler.steps == 30
    assert defaults.sampler.dds.cg_iters == 10 and defaults.data.phantom_seed >= 1000
    assert defaults.sampler.name == "dds" and defaults.sampler.renoise == "dds"
    with pytest.raises(UserError, match="Unknown flag"):
        cli.parse_args(["--config", "ct.py", "--steps=3"])


def test_library_errors_name_the_config_keys():
    """The library's ``name=value`` errors come back as UserErrors naming the config key
    (the noise's statistics are tested in test_measurement.py)."""
    config = cli.load_config("ct.py:phantom,smoke")[0]
    op = inputs.make_operator(config.operator, (1, 8, 8))
    config.operator.measurement_noise = "salt"
    with pytest.raises(UserError, match="operator.measurement_noise='salt'"):
        inputs.simulate_measurement(jax.random.key(0), op, np.zeros((1, 8, 8)), config.operator)
    config.operator.measurement_noise, config.operator.noise_std = "gaussian", -1.0
    with pytest.raises(UserError, match="operator.noise_std=-1.0"):
        inputs.simulate_measurement(jax.random.key(0), op, np.zeros((1, 8, 8)), config.operator)
    config.operator.num_detectors = -2
    with pytest.raises(UserError, match="operator.num_detectors=-2"):
        inputs.make_operator(config.operator, (1, 8, 8))
    with pytest.raises(UserError, match="data.plane='coronal'"):
        inputs.make_operator(cli.load_config("ct.py")[0].operator, (1, 8, 8), plane="coronal")
    data = config.data
    data.slice_start, data.num_slices = 2, 9
    volume, affine, _ = inputs.load_volume(data, 8)
    with pytest.raises(UserError, match="data.slice_start=2, data.num_slices=9"):
        inputs.preprocess(volume, affine, data, 8)


def test_a_file_is_prepared_as_the_library_prepares_it(tmp_path):
    """The one-reader rule, the CLI's half: a NIfTI file under the default ``data`` section
    gives `prepare.prepare_volume`'s planes and grid for the HU window (tests/test_prepare.py:
    the trainer's half)."""
    volume = np.random.default_rng(0).uniform(-2048.0, 1600.0, (12, 7, 10)).astype(np.float32)
    path = tmp_path / "scan.nii.gz"
    io.write_nifti(path, volume, np.diag([0.8, 1.2, 2.0, 1.0]))
    window, window_range, floor = prepare.intensity_window("hu", HU_MIN, HU_MAX)
    for plane in ("coronal", "axial"):
        data = cli.load_config("ct.py")[0].data
        data.path, data.plane = str(path), plane
        raw, raw_affine, _ = inputs.load_volume(data, 8)
        planes, grid = inputs.preprocess(raw, raw_affine, data, 8)
        expected, expected_grid = prepare.prepare_volume(
            *io.read_volume(path), resolution=8, plane=plane, window=window,
            window_range=window_range, floor=floor)
        np.testing.assert_array_equal(planes, expected)
        np.testing.assert_array_equal(grid, expected_grid)


def write_tiny_prior(folder, channels=1, resolution=16):
    """An untrained tiny U-Net in the `iscs_jax.priors.format` files (NAME.json + NAME.msgpack)."""
    from flax import nnx

    from iscs_jax.models import UNet, UNetConfig
    from iscs_jax.priors import format as prior_format

    config = UNetConfig(channels=channels, base_width=8, channel_mults=(1, 2),
                        attention_resolutions=(), norm_groups=4, embedding_dim=16)
    # Shapes only (eager initialisation is slow on CPU), then small random weights.
    shapes = nnx.to_pure_dict(nnx.state(nnx.eval_shape(
        lambda: UNet(config, resolution, rngs=nnx.Rngs(0)))))
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: rng.normal(0, 0.05, s.shape).astype(s.dtype), shapes)
    meta = prior_format.PriorMeta(
        name=f"tiny{channels}", architecture="unet", config=config.to_dict(),
        parameterisation={"kind": "edm", "sigma_data": 0.2, "data_mean": 0.13},
        resolution=resolution, channels=channels,
        intensity={"kind": "hu_window", "hu_min": -1000.0, "hu_max": 1600.0},
        sigma_min=0.01, sigma_max=50.0)
    return Path(prior_format.write(str(folder / f"tiny{channels}"), meta, params))


def test_learned_prior_channel_mismatch_and_missing_prior(tmp_path, capsys):
    two = write_tiny_prior(tmp_path / "priors", channels=2)
    run_fails(capsys, ["--config", "ct.py:phantom,smoke", f"--config.prior.name={two}",
                       "--workdir", str(tmp_path / "out2")], "2-channel", "single-channel")
    run_fails(capsys, ["--config", "ct.py:phantom,smoke", f"--config.prior.name={tmp_path}/none",
                       "--workdir", str(tmp_path / "out3")], "Could not load the prior",
              "prior.name=gaussian")
    assert not (tmp_path / "out2").exists() and not (tmp_path / "out3").exists()


def test_converted_score_sde_prior_runs_through_the_cli(tmp_path, capsys):
    """A (random, tiny) NCSN++ converted from a score_sde-style checkpoint, used with
    ``--config.prior.path=... --config.prior.kind=score_sde``."""
    from iscs_jax.convert import score_sde
    from test_ncsnpp import MODEL_CONFIG, random_state_dict, tiny_config

    stem = score_sde.to_prior({"model": random_state_dict(tiny_config())}, MODEL_CONFIG + ":tiny",
                              str(tmp_path / "priors" / "tiny_ncsnpp"), weights="model")
    folder, out = run_ok(capsys, smoke(
        tmp_path / "runs", f"--config.prior.path={stem}", "--config.prior.kind=score_sde",
        "--config.compare=iscs", "--config.sampler.steps=2", "--config.data.phantom_slices=2",
        "--config.data.num_slices=2"))
    assert f"prior {stem};" in out
    recon, _ = load(folder, "recon_iscs.nii.gz")
    assert recon.shape == (2, RESOLUTION, RESOLUTION) and np.all(np.isfinite(recon))
    fbp, _ = load(folder, "fbp.nii.gz")
    assert np.abs(recon - fbp).max() > 1e-3  # the denoiser changed the warm start
    assert json.loads((folder / "config.json").read_text())["prior"]["kind"] == "score_sde"


def test_cli_subprocess_with_a_learned_prior_file_and_failure(tmp_path):
    """``python -m sample`` with an (untrained, tiny) U-Net prior in the shipped file format."""
    stem = write_tiny_prior(tmp_path / "priors")
    done = run_python("-m", "sample", "--config", "ct.py:phantom,smoke",
                      f"--config.prior.name={stem}", "--config.compare=iscs",
                      "--config.sampler.steps=2", "--workdir", "runs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / done.stdout.strip().splitlines()[-1]
    assert folder.parent == tmp_path / "runs" / "ct"
    recon, _ = load(folder, "recon_iscs.nii.gz")
    assert recon.shape == (4, 16, 16) and np.all(np.isfinite(recon))
    assert json.loads((folder / "config.json").read_text())["sde"]["sigma_min"] == 0.01
    failed = run_python("-m", "sample", *smoke("runs2", "--config.data.path=missing.nii.gz"),
                        cwd=tmp_path)
    assert failed.returncode != 0 and "does not exist" in failed.stderr
    assert "Traceback" not in failed.stderr and not (tmp_path / "runs2").exists()


def test_cli_on_two_devices_matches_one_device(tmp_path, capsys):
    """``parallel.num_devices=2`` (fake CPU devices, 5 slices: padded) gives the 1-device result."""
    five = ("--config.data.phantom_slices=5", "--config.data.num_slices=5")
    single, _ = run_ok(capsys, smoke(tmp_path / "one", *five))
    done = run_python("-m", "sample", *smoke(tmp_path / "two", *five),
                      "--config.parallel.num_devices=2", devices=2, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "sharding 5 slices over 2 devices" in done.stdout
    sharded = Path(done.stdout.strip().splitlines()[-1])
    for name in ("recon_iid.nii.gz", "recon_iscs.nii.gz"):
        np.testing.assert_allclose(load(sharded, name)[0], load(single, name)[0], atol=1e-5)
    run_fails(capsys, smoke(tmp_path / "three", "--config.parallel.num_devices=3"),
              "parallel.num_devices=3")


@pytest.mark.slow  # the 4-device subprocess: ~30 s
def test_every_sampler_by_name_on_one_and_four_devices(tmp_path):
    """``--config.sampler.name=NAME`` for every sampler: 4 fake devices give the 1-device result."""
    report = run_check("cli_devices_check.py", str(tmp_path), timeout=900)
    from iscs_jax import samplers
    for name in samplers.SAMPLERS:
        assert report[name] <= 1e-5, (name, report[name])
        assert report[name + "_range"] > 0.1  # a real reconstruction, not zeros


def test_two_processes_two_devices_each_match_one_device(tmp_path, capsys):
    """A real multi-host run on localhost: 2 processes x 2 CPU devices (jax.distributed, CPU
    collectives), ADMM z-TV (psum'd CG and z halo exchanges across processes); process 0
    alone writes the one result folder, and it matches the single-device run."""
    five = ("--config.data.phantom_slices=5", "--config.data.num_slices=5",
            "--config.sampler.name=admm_tv", "--config.compare=iscs")
    single, _ = run_ok(capsys, smoke(tmp_path / "one", *five))
    address = local_address()
    procs = run_processes([["-m", "sample", *smoke(tmp_path / "multi", *five),
                            f"--config.parallel.coordinator_address={address}",
                            "--config.parallel.num_processes=2",
                            f"--config.parallel.process_id={i}"] for i in range(2)],
                          devices=2, cwd=tmp_path)
    for proc in procs:
        assert proc.returncode == 0, proc.stderr[-4000:]
    assert "sharding 5 slices over 4 devices" in procs[0].stdout
    folders = list((tmp_path / "multi" / "ct").iterdir())
    assert len(folders) == 1 and Path(procs[0].stdout.strip().splitlines()[-1]) == folders[0]
    assert str(folders[0]) not in procs[1].stdout  # process 1 printed no folder: it wrote none
    np.testing.assert_allclose(load(folders[0], "recon_iscs.nii.gz")[0],
                               load(single, "recon_iscs.nii.gz")[0], atol=1e-5)


def test_cone_beam_smoke_uses_fdk_baseline(tmp_path, capsys):
    """cbct.py:smoke end to end: y = ConeBeam.A(gt) in the scaled preset, FDK baseline row."""
    folder, out = run_ok(capsys, smoke(tmp_path, config="cbct.py:smoke"))
    assert folder.parent == tmp_path / "cbct"
    assert {"fdk.nii.gz", "recon_iid.nii.gz", "recon_iscs.nii.gz"} <= {p.name for p in
                                                                      folder.iterdir()}
    table = json.loads((folder / "metrics.json").read_text())
    assert list(table) == ["fdk", "iid", "iscs"]
    assert any(line.startswith("fdk") for line in out.splitlines())
    gt = load(folder, "gt.nii.gz")[0]
    config = cli.load_config("cbct.py:smoke")[0]
    operator = inputs.make_operator(config.operator, gt.shape)
    assert isinstance(operator, operators.ConeBeam) and operator.num_views == 20
    assert operator.scan_kind == "full"
    # The published magnification, scaled to a 32-pixel-wide volume.
    assert operator.source_origin == pytest.approx(700 * RESOLUTION / 256)
    assert operator.detector_shape[1] == 2 * RESOLUTION
    np.testing.assert_allclose(np.load(folder / "measurement.npy"), operator.A(jnp.asarray(gt)),
                               rtol=1e-4, atol=1e-4)
    fdk = load(folder, "fdk.nii.gz")[0]
    np.testing.assert_allclose(fdk, operator.fdk(operator.A(jnp.asarray(gt))), atol=1e-4)


def test_cone_beam_configs_and_presets():
    cbct, lact = cli.load_config("cbct.py")[0], cli.load_config("cbct_lact.py:smoke")[0]
    assert cbct.operator.kind == lact.operator.kind == "cone_beam"
    assert (cbct.operator.num_views, cbct.sampler.steps, cbct.sampler.dds.cg_iters) == (20, 30, 10)
    assert cbct.sde.sigma_max == 5 and cbct.sampler.warm_start == "baseline"
    assert cbct.compare == "iid,iscs"
    limited = inputs.make_operator(lact.operator, (4, 32, 32))
    np.testing.assert_allclose(np.rad2deg(limited.angles), np.arange(90.0), atol=1e-9)
    assert limited.scan_kind == "limited"
    cbct.operator.preset = "paper"
    paper = inputs.make_operator(cbct.operator, (8, 256, 256))
    assert (paper.source_origin, paper.origin_detector) == (700.0, 500.0)
    assert paper.detector_shape == (512, 512) and paper.detector_spacing == (2.0, 2.0)
    fan = cli.load_config("cbct.py")[0]
    fan.operator.kind = "fan_beam"
    assert isinstance(inputs.make_operator(fan.operator, (4, 32, 32)), operators.FanBeam)
    for field, value, message in [("kind", "helical", "operator.kind"),
                                  ("preset", "tiny", "operator.preset")]:
        bad = cli.load_config("cbct.py")[0]
        setattr(bad.operator, field, value)
        with pytest.raises(UserError, match=message):
            inputs.make_operator(bad.operator, (4, 32, 32))
