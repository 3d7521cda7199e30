"""Tests of iscs_jax.orientation (axis codes, reorient, restore)."""

import itertools
import json
import types
from pathlib import Path

import nibabel.orientations as nio
import numpy as np
import pytest

from iscs_jax import orientation

AFFINE = np.array([[-0.7, 0, 0, 12.0], [0, 0.8, 0, -30.0], [0, 0, 2.5, 40.0], [0, 0, 0, 1.0]])


def _world(affine, shape):
    """World coordinates ``[D, H, W, 3]`` of every voxel of a ``[D, H, W]`` volume."""
    k, j, i = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    index = np.stack([i, j, k, np.ones_like(i)], axis=-1)
    return (index @ np.asarray(affine).T)[..., :3]


def _all_orientations():
    """The 48 axis codes: every permutation of (L/R, A/P, I/S) with every choice of ends."""
    for order in itertools.permutations(range(3)):
        for ends in itertools.product((0, 1), repeat=3):
            yield tuple(orientation._PAIRS[a][e] for a, e in zip(order, ends))


def _stored_as(volume, affine, codes):
    """``volume`` stored as another file would hold it: in ``codes``, via nibabel directly."""
    ornt = nio.ornt_transform(nio.io_orientation(affine), nio.axcodes2ornt(codes))
    data = nio.apply_orientation(volume.transpose(2, 1, 0), ornt)
    return data.transpose(2, 1, 0), affine @ nio.inv_ornt_aff(ornt, volume.shape[::-1])


def test_axis_codes_describe_the_nifti_axes():
    assert orientation.axis_codes(AFFINE) == ("L", "A", "S")
    assert orientation.axis_codes(np.eye(4)) == ("R", "A", "S")
    assert orientation.axis_codes(np.diag([-1.0, -1.0, 1.0, 1.0])) == ("L", "P", "S")
    swapped = np.eye(4)[[2, 1, 0, 3]]  # i along z, k along x
    assert orientation.axis_codes(swapped) == ("S", "A", "R")


def test_reorient_round_trip_and_world_positions():
    volume = np.random.default_rng(0).normal(size=(3, 4, 5)).astype(np.float32)
    moved, moved_affine = orientation.reorient(volume, AFFINE, "PSR")
    assert orientation.axis_codes(moved_affine) == ("P", "S", "R")
    assert moved.shape == (5, 3, 4)  # k <- R (was i, W=5), j <- S (k, D=3), i <- P (j, H=4)
    # every voxel keeps its world position: same value at the same world point
    world, moved_world = _world(AFFINE, volume.shape), _world(moved_affine, moved.shape)
    lookup = {tuple(np.round(p, 6)): v for p, v in zip(world.reshape(-1, 3), volume.ravel())}
    for p, v in zip(moved_world.reshape(-1, 3), moved.ravel()):
        assert lookup[tuple(np.round(p, 6))] == v
    back, back_affine = orientation.restore(moved, moved_affine, orientation.axis_codes(AFFINE))
    np.testing.assert_array_equal(back, volume)
    np.testing.assert_allclose(back_affine, AFFINE, atol=1e-12)


def test_reorient_is_a_no_op_in_its_own_codes():
    volume = np.arange(24.0).reshape(2, 3, 4)
    moved, moved_affine = orientation.reorient(volume, AFFINE, "las")
    assert moved is volume
    np.testing.assert_array_equal(moved_affine, AFFINE)
    assert orientation.describe("LAS", "LAS").startswith("none")


def test_all_48_orientations_reorient_to_the_same_array():
    volume = np.random.default_rng(1).normal(size=(2, 3, 4)).astype(np.float32)
    codes = list(_all_orientations())
    assert len(set(codes)) == 48
    for stored in codes:
        data, affine = _stored_as(volume, AFFINE, stored)
        assert orientation.axis_codes(affine) == stored
        back, back_affine = orientation.reorient(data, affine, "LAS")
        np.testing.assert_array_equal(back, volume, err_msg=str(stored))
        np.testing.assert_allclose(back_affine, AFFINE, atol=1e-12, err_msg=str(stored))
        again, again_affine = orientation.restore(back, back_affine, stored)
        np.testing.assert_array_equal(again, data)
        np.testing.assert_allclose(again_affine, affine, atol=1e-12)


def test_describe_names_the_flips_and_permutations():
    assert orientation.describe("LPS", "LAS") == "flipped j (rows, H)"
    assert "permuted" in orientation.describe("SAL", "LAS")
    assert "flipped" not in orientation.describe("SAL", "LAS")


def test_small_obliquity_is_a_note_and_large_is_an_error():
    tilt = lambda degrees: np.array([  # noqa: E731  rotation about x
        [1, 0, 0, 0], [0, np.cos(np.radians(degrees)), -np.sin(np.radians(degrees)), 0],
        [0, np.sin(np.radians(degrees)), np.cos(np.radians(degrees)), 0], [0, 0, 0, 1.0]])
    assert orientation.check_obliquity(np.eye(4)) == []
    notes = orientation.check_obliquity(tilt(17.0))
    assert notes and "17 degrees" in notes[0]
    assert orientation.axis_codes(tilt(17.0)) == ("R", "A", "S")
    with pytest.raises(orientation.OrientationError, match="oblique.*45.0 degrees"):
        orientation.axis_codes(tilt(45.0))
    with pytest.raises(orientation.OrientationError, match="degenerate"):
        orientation.axis_codes(np.diag([1.0, 0.0, 1.0, 1.0]))


@pytest.mark.parametrize("codes", ["LA", "LAL", "XYZ", "LRS"])
def test_bad_codes_are_refused(codes):
    with pytest.raises(orientation.OrientationError, match="L/R, A/P, S/I"):
        orientation.normalize_codes(codes)


# --- the done-when: one scan stored in other orientations reconstructs to the same volume ---

CHEST_CODES = ("L", "A", "S")
#: Stored orientations of the NIfTI variants: the in-plane axes swapped and both flipped;
#: z first, with flips (the DICOM series: rows flipped).
VARIANTS = [("P", "R", "S"), ("S", "P", "R")]
RUN = ["--config", "ct.py:smoke", "--config.prior.name=gaussian", "--config.prior.resolution=32",
       "--config.prior.orientation=LAS", "--config.compare=iscs", "--config.sampler.steps=2",
       "--config.data.num_slices=0"]


@pytest.fixture(scope="module")
def chest(tmp_path_factory):
    """8 slices of the embedded chest slab at the smoke size (32 x 32, 4 x 4 block means,
    whole HU), written as NIfTI (LAS, as shipped), NIfTI variants and a DICOM series."""
    from iscs_jax import io
    from iscs_jax.data import embedded, prepare
    from fixtures import write_dicom_image

    volume, affine, _ = embedded.load("chest_ct", resolution=32)
    assert orientation.axis_codes(affine) == CHEST_CODES
    part, part_affine = prepare.select_planes(volume, affine, "axial", 28, 8)
    small = np.rint(part.reshape(8, 32, 4, 32, 4).mean(axis=(2, 4))).astype(np.float32)
    small_affine = prepare.resized_affine(part_affine, part.shape, small.shape)
    folder = tmp_path_factory.mktemp("chest")
    paths = {"nifti": folder / "las.nii.gz"}
    io.write_nifti(paths["nifti"], small, small_affine)
    for codes in VARIANTS:
        paths["".join(codes)] = folder / f"{''.join(codes)}.nii.gz"
        io.write_nifti(paths["".join(codes)], *_stored_as(small, small_affine, codes))
    paths["dicom"] = _write_dicom(folder / "dicom", small, small_affine, write_dicom_image)
    return small, small_affine, paths


def _write_dicom(folder, volume, affine, write_image):
    """A standard DICOM series (LPS: rows top to bottom towards posterior, as scanners
    write them) of ``volume [D, H, W]`` (LAS): each slice's rows reversed."""
    from pydicom.uid import generate_uid

    folder.mkdir()
    lps, uid = np.diag([-1.0, -1.0, 1.0, 1.0]), generate_uid()
    height, spacing = volume.shape[1], np.linalg.norm(affine[:3, :2], axis=0)
    for k in range(volume.shape[0]):
        first = lps @ affine @ np.array([0.0, height - 1.0, k, 1.0])  # row 0 = last j
        write_image(folder / f"{k:03d}.dcm", volume[k, ::-1], first[:3], uid=uid, slope=1.0,
                    intercept=-1024.0, row_dir=(1.0, 0.0, 0.0), col_dir=(0.0, 1.0, 0.0),
                    spacing=(spacing[1], spacing[0]))
    return folder


def _run(capsys, workdir, path, *extra):
    from sample.__main__ import main

    status = main([*RUN, f"--config.data.path={path}", "--workdir", str(workdir), *extra])
    out, err = capsys.readouterr()
    assert status == 0, err
    return Path(out.strip().splitlines()[-1]), out


def _read(path):
    import nibabel as nib

    image = nib.load(str(path))
    return np.asarray(image.dataobj, np.float32).transpose(2, 1, 0), image.affine


def _resampled(volume, affine, onto_affine, onto_shape):
    """``volume`` (with ``affine``) sampled at the voxel centres of another grid (linear)."""
    from scipy import ndimage

    world = _world(onto_affine, onto_shape).reshape(-1, 3)
    ijk = (np.c_[world, np.ones(len(world))] @ np.linalg.inv(affine).T)[:, :3]
    assert np.abs(ijk - np.round(ijk)).max() < 1e-3  # the grids' voxel centres coincide
    return ndimage.map_coordinates(volume, ijk[:, ::-1].T, order=1).reshape(onto_shape)


def test_every_stored_orientation_reconstructs_the_same_volume_in_world_space(
        chest, tmp_path, capsys):
    volume, affine, paths = chest
    reference, out = _run(capsys, tmp_path / "nifti", paths["nifti"])
    assert "input orientation LAS: already in the prior's orientation" in out
    truth, truth_affine = _read(reference / "recon_iscs.nii.gz")
    np.testing.assert_allclose(truth_affine, affine, atol=1e-5)
    metrics = json.loads((reference / "metrics.json").read_text())
    runs = {"".join(codes): () for codes in VARIANTS}
    runs["dicom"] = ("--config.data.output_grid=input",)
    for name, extra in runs.items():
        folder, out = _run(capsys, tmp_path / name, paths[name], *extra)
        stored = "LPS" if name == "dicom" else name
        assert f"input orientation {stored} -> the prior's LAS: " in out, out
        if name == "dicom":
            assert "input orientation LPS -> the prior's LAS: flipped j (rows, H)" in out
        input_affine = io_affine(paths[name])
        for filename in ("gt.nii.gz", "recon_iscs.nii.gz"):
            result, result_affine = _read(folder / filename)
            np.testing.assert_allclose(result_affine, input_affine, atol=1e-4)  # input's own
            assert orientation.axis_codes(result_affine) == tuple(stored)
            expected, _ = _read(reference / filename)
            back = _resampled(result, result_affine, truth_affine, truth.shape)
            assert np.abs(back - expected).max() <= 1e-4, (name, filename)
        assert json.loads((folder / "metrics.json").read_text()) \
            .get("iscs", {}).get("psnr") == metrics["iscs"]["psnr"]


def io_affine(path):
    """The affine the reader gives ``path`` (a NIfTI file or a DICOM folder)."""
    from iscs_jax import io

    return io.read_volume(path)[1]


# --- the CLI's side: what is reoriented to, errors, and the demo left as it is ------------

def test_the_demo_volumes_are_already_in_their_priors_orientation():
    """The embedded chest slab (chest128), MRI slab (mri128) and phantom (phantom64) are
    used bit for bit as before: no reorientation, the very arrays."""
    import ml_collections

    from iscs_jax import priors
    from iscs_jax.data import embedded
    from sample import inputs, prior as prior_lib

    for name, prior_name in (("chest_ct", "chest128"), ("mri", "mri128"),
                             ("phantom", "phantom64")):
        volume, affine, _ = embedded.load(name, resolution=16, phantom_slices=3)
        prior = types.SimpleNamespace(metadata=prior_format_doc(priors.resolve(prior_name)))
        codes = prior_lib.plane_orientation(prior, ml_collections.ConfigDict({"orientation": ""}))
        notes = []
        plane = "coronal" if name == "mri" else "axial"
        same, same_affine, found = inputs.orient(volume, affine, codes, plane, notes)
        assert same is volume and same_affine is affine and found is None
        assert notes == [f"input orientation {''.join(codes)}: already in the prior's "
                         "orientation"]


def prior_format_doc(stem):
    from iscs_jax.priors import format as prior_format

    return prior_format.read_meta(stem).to_json()


def test_prior_orientation_key_overrides_and_is_checked():
    import ml_collections

    from sample import prior as prior_lib
    from sample.errors import UserError

    las = types.SimpleNamespace(metadata={"orientation": "LAS"})
    none = types.SimpleNamespace(metadata={})  # the Gaussian, or a prior file without it
    key = lambda codes: ml_collections.ConfigDict({"orientation": codes})  # noqa: E731
    assert prior_lib.plane_orientation(las, key("")) == ("L", "A", "S")
    assert prior_lib.plane_orientation(las, key("rpi")) == ("R", "P", "I")
    assert prior_lib.plane_orientation(none, key("")) is None
    with pytest.raises(UserError, match="prior.orientation='LAX'"):
        prior_lib.plane_orientation(none, key("LAX"))


def test_oblique_inputs_and_images_of_another_plane_are_clear_errors():
    from sample import inputs
    from sample.errors import UserError

    volume = np.random.default_rng(0).normal(size=(4, 6, 5))
    angle = np.radians(45.0)
    oblique = np.eye(4)
    oblique[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    with pytest.raises(UserError, match="oblique"):
        inputs.orient(volume, oblique, ("L", "A", "S"))
    notes = []  # without codes to reorient to, nothing is refused
    assert inputs.orient(volume, oblique, None, notes=notes)[2] is None
    assert "stored array order" in notes[0]
    sagittal = np.eye(4)[[2, 0, 1, 3]]  # one sagittal image: i -> A, j -> S, k -> R
    with pytest.raises(UserError, match="holds no axial images.*data.plane"):
        inputs.orient(volume[:1], sagittal, ("L", "A", "S"))
    moved, _, found = inputs.orient(volume[:1], sagittal, ("L", "A", "S"), "sagittal")
    assert found == ("A", "S", "R") and moved.shape == (6, 5, 1)


def test_a_measured_sinogram_keeps_the_input_in_its_stored_orientation(tmp_path):
    """y was measured on the stored slices, so the volume is not reoriented (with a note)."""
    import jax

    from iscs_jax import cli, io
    from sample import inputs
    from sample.cli import PROGRAM

    config, _ = cli.load_config("ct.py:smoke", PROGRAM.configs)
    hu = np.where(np.random.default_rng(0).random((4, 16, 16)) < 0.5, -1000.0, 40.0)
    io.write_nifti(tmp_path / "lps.nii.gz", hu, np.diag([-1.0, -1.0, 1.0, 1.0]))  # LPS
    operator = inputs.make_operator(config.operator, (4, 16, 16))
    np.save(tmp_path / "y.npy", np.zeros((4, *operator.measurement_shape()), np.float32))
    config.data.update(path=str(tmp_path / "lps.nii.gz"), sinogram=str(tmp_path / "y.npy"))
    result = inputs.prepare_inputs(jax.random.key(0), config, 16, codes=("L", "A", "S"))
    assert result.grid.orientation is None
    assert any("input orientation LPS: used in its stored array order; a measured sinogram"
               in note for note in result.notes), result.notes
