"""Tests of operators.scan: view angles from settings, their names, the divergent presets."""

import numpy as np
import pytest

from iscs_jax.operators import scan


def test_view_angles_of_each_geometry_and_full_turn():
    np.testing.assert_array_equal(scan.view_angles("sparse_view", 4),
                                  np.arange(4) * (np.pi / 4))
    np.testing.assert_array_equal(scan.view_angles("sparse_view", 4, full_turn=360.0),
                                  scan.full_orbit_angles(4))
    np.testing.assert_allclose(np.rad2deg(scan.view_angles("limited_angle", 3, 90.0)),
                               [0.0, 30.0, 60.0])
    np.testing.assert_allclose(np.rad2deg(scan.view_angles("limited_angle", 4, 240.0, 360.0)),
                               [0.0, 60.0, 120.0, 180.0])


@pytest.mark.parametrize("args, message", [
    (("helical", 4), "geometry='helical'"),
    (("sparse_view", 0), "num_views=0"),
    (("limited_angle", 4, 200.0), r"range_degrees=200.0 is outside \(0, 180\]"),
    (("limited_angle", 4, None), "range_degrees=None"),
    (("limited_angle", 4, 400.0, 360.0), r"\(0, 360\]"),
])
def test_view_angle_errors_name_the_argument(args, message):
    with pytest.raises(ValueError, match=message):
        scan.view_angles(*args)


def test_angle_coverage_names_the_geometry_back():
    for geometry, span, turn in [("sparse_view", None, 180.0), ("sparse_view", None, 360.0),
                                 ("limited_angle", 90.0, 180.0), ("limited_angle", 120.0, 360.0)]:
        assert scan.angle_coverage(scan.view_angles(geometry, 6, span, turn), turn) == geometry
    assert scan.angle_coverage(scan.view_angles("sparse_view", 1)) == "sparse_view"
    assert scan.angle_coverage([0.1, 0.5, 0.6]) == "custom"
    # A limited angle over the full turn is the sparse view.
    assert scan.angle_coverage(scan.view_angles("limited_angle", 5, 180.0)) == "sparse_view"


def test_divergent_presets():
    paper = scan.divergent_geometry("paper", (8, 256, 256))
    assert paper == dict(source_origin=700.0, origin_detector=500.0, rows=512, cols=512,
                         spacing=2.0)
    scaled = scan.divergent_geometry("scaled", (8, 32, 32))
    assert (scaled["source_origin"], scaled["origin_detector"]) == (87.5, 62.5)  # x 32 / 256
    assert (scaled["cols"], scaled["spacing"]) == (64, 2.0)
    # Even rows that see all 8 slices at the nearest voxel's magnification (2 mm rows).
    magnification = 150.0 / (87.5 - 16.0 * np.sqrt(2.0))
    assert scaled["rows"] % 2 == 0 and scaled["rows"] * 2.0 >= 8 * magnification
    with pytest.raises(ValueError, match="preset='tiny'"):
        scan.divergent_geometry("tiny", (8, 32, 32))


def test_require_axial():
    scan.require_axial("axial", "cone_beam")
    with pytest.raises(ValueError, match="plane='coronal': cone_beam measures axial"):
        scan.require_axial("coronal", "cone_beam")
