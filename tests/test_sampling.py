"""`iscs_jax.sampling`: draws per noise control, their keys, mean and standard deviation.

A stand-in Reconstructor (no compilation): the draw is a function of its key, so the keys
are checked exactly. Checkpointed resumption runs end to end in tests/test_resume.py.
"""

import jax
import numpy as np

from iscs_jax import sampling


class KeyedRecon:
    """`runtime.Reconstructor`'s interface: each step calls ``on_step``; the result is the
    key's first random bits (times 1 for iid, 2 for iscs) over a ``[2, 3]`` volume."""
    num_steps = 3

    def reconstruct(self, key, prepared, *, noise, on_step, start, on_iterate):
        assert prepared == "prepared" and start is None
        for i in range(self.num_steps):
            on_step(i)
            on_iterate(i + 1, None)
        bits = jax.random.uniform(key, (2, 3))
        return bits * (2.0 if noise == "iscs" else 1.0)


def test_draws_use_fold_in_keys_and_the_mean_and_std_over_them():
    key, lines, progress = jax.random.key(1), [], sampling.Progress()
    got = sampling.sample_noise_kinds(KeyedRecon(), "prepared", key, kinds=("iid", "iscs"),
                                      num_samples=3, progress=progress, log=lines.append)
    draws = np.stack([np.asarray(jax.random.uniform(jax.random.fold_in(key, k), (2, 3)))
                      for k in range(3)])
    for kind, scale in (("iid", 1.0), ("iscs", 2.0)):
        mean, std, seconds = got[kind]
        np.testing.assert_allclose(mean, scale * draws.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(std, scale * draws.std(axis=0), rtol=1e-5)
        assert std.max() > 0 and seconds >= 0
    assert progress.steps_seen == 3 and lines[-1].startswith("sampled iscs 3/3: 3 steps")
    one = sampling.sample_noise_kinds(KeyedRecon(), "prepared", key, kinds=("iid",), log=print)
    assert one["iid"][1] is None  # one draw: no standard deviation
