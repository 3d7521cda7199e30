"""Metrics against scikit-image on the same arrays, and the discontinuity score."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from iscs_jax import metrics

SKIMAGE_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def volumes(seed=0, shape=(12, 16, 20), noise=0.05):
    rng = np.random.default_rng(seed)
    z, yy, xx = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    ref = (0.5 + 0.3 * np.sin(4 * z + 3 * yy) * np.cos(5 * xx)).astype(np.float32)
    recon = (ref + noise * rng.standard_normal(shape)).astype(np.float32)
    return recon, ref


def sk_ssim(a, b, data_range):
    return structural_similarity(a, b, data_range=data_range, **SKIMAGE_SSIM)


@pytest.mark.parametrize("data_range", [None, 2.0])
def test_psnr_and_ssim_match_skimage(data_range):
    recon, ref = volumes()
    image, image_ref = recon[3], ref[3]
    rng_ = float(image_ref.max() - image_ref.min()) if data_range is None else data_range
    assert abs(float(metrics.psnr(image, image_ref, data_range))
               - peak_signal_noise_ratio(image_ref, image, data_range=rng_)) < 1e-3
    assert abs(float(metrics.ssim(image, image_ref, data_range)) - sk_ssim(image, image_ref, rng_)) < 1e-4


def test_plane_and_volume_metrics_match_skimage_per_image():
    recon, ref = volumes(seed=1, noise=0.1)
    data_range = float(ref.max() - ref.min())
    result = metrics.volume_metrics(recon, ref)
    for plane, axis in metrics.PLANES.items():
        images = np.moveaxis(recon, axis, 0), np.moveaxis(ref, axis, 0)
        want_ssim = np.mean([sk_ssim(a, b, data_range) for a, b in zip(*images)])
        want_psnr = np.mean([peak_signal_noise_ratio(b, a, data_range=data_range)
                             for a, b in zip(*images)])
        assert abs(result[plane]["ssim"] - want_ssim) < 1e-4, plane
        assert abs(result[plane]["psnr"] - want_psnr) < 1e-3, plane
    assert abs(result["psnr"] - peak_signal_noise_ratio(ref, recon, data_range=data_range)) < 1e-3
    assert result["ssim"] == pytest.approx(np.mean([result[p]["ssim"] for p in metrics.PLANES]))
    assert all(type(v) is float for v in (result["psnr"], result["ssim"], result["discontinuity"]))


def test_discontinuity_zero_for_identical_and_larger_for_stripes():
    _, ref = volumes()
    rng = np.random.default_rng(2)
    stripes = ref + 0.05 * rng.standard_normal((ref.shape[0], 1, 1)).astype(np.float32)
    smooth = ref + 0.05 * np.linspace(-1, 1, ref.shape[0])[:, None, None].astype(np.float32)
    assert float(metrics.discontinuity(ref, ref)) == 0.0
    assert float(metrics.discontinuity(stripes, ref)) > 5 * float(metrics.discontinuity(smooth, ref))
    # Independent per-slice offsets (stripes) with the same error energy as a smooth drift.
    diff = np.diff(stripes - ref, axis=0)
    expected = np.sqrt(np.mean(diff**2)) / (ref.max() - ref.min())
    assert float(metrics.discontinuity(stripes, ref)) == pytest.approx(expected, rel=1e-4)


def test_small_planes_and_errors():
    recon, ref = volumes(shape=(4, 16, 16))  # coronal/sagittal images are 4 x 16: padded
    result = metrics.volume_metrics(recon, ref)
    assert 0.0 < result["coronal"]["ssim"] < 1.0
    with pytest.raises(ValueError, match="valid planes"):
        metrics.plane_metrics(recon, ref, "oblique")
    with pytest.raises(ValueError, match="2 slices"):
        metrics.discontinuity(recon[:1], ref[:1])
    with pytest.raises(ValueError, match="one shape"):
        metrics.volume_metrics(recon[:2], ref)


def test_metrics_table_is_volume_metrics_per_method_as_floats():
    from iscs_jax.data import prepare

    rng = np.random.default_rng(5)
    truth = rng.random((6, 8, 7)).astype(np.float32)
    noisy = truth + 0.05 * rng.standard_normal(truth.shape).astype(np.float32)
    planes = {name: prepare.to_planes(v, "coronal") for name, v in
              (("fbp", noisy), ("iscs", truth))}
    table = metrics.metrics_table(planes, prepare.to_planes(truth, "coronal"),
                                  {"fbp": 0.5, "iscs": 2.0}, "coronal", data_range=1.0)
    expected = metrics.volume_metrics(noisy, truth, data_range=1.0,
                                      stack_axis=metrics.PLANES["coronal"])
    assert table["fbp"]["psnr"] == pytest.approx(float(expected["psnr"]))
    assert table["fbp"]["axial"]["ssim"] == pytest.approx(float(expected["axial"]["ssim"]))
    assert table["iscs"]["psnr"] > 60 and table["iscs"]["seconds"] == 2.0
    assert type(table["fbp"]["psnr"]) is float
    assert metrics.metrics_table(planes, None, {"fbp": 1.0, "iscs": 2.0}) == {
        "fbp": {"seconds": 1.0}, "iscs": {"seconds": 2.0}}
