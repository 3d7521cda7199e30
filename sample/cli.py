"""The command line of ``python -m sample`` (``iscs-sample``) on the shared flag stack
(`iscs_jax.cli`): ``--config NAME[:ARG]``, ``--config.KEY=VALUE``, ``--workdir``,
``--compilation_cache``, ``--verbose``."""

from __future__ import annotations

import types

import ml_collections

from iscs_jax import cli as shared

from . import configs

#: Keys that moved, and where to.
RENAMED_KEYS = {
    "sampler.mode": "sampler.renoise (the re-noising rule; sampler.name picks the sampler)",
    "sampler.cg_iters": "sampler.dds.cg_iters (each sampler has its own section, e.g. "
                        "sampler.ddnm.cg_iters)",
    "sampler.rho": "sampler.dds.rho (or sampler.admm_tv.rho)",
}

PROGRAM = shared.Program(
    name="python -m sample",
    summary=("Reconstructs a volume (default: the embedded chest CT slab) and writes "
             "<workdir>/<config>/<time>/, whose path is the last line printed."),
    config=("a config file: a shipped name (ct.py, lact.py, cbct.py, cbct_lact.py, mri_zsr.py, "
            "mri_cs.py) or a path; ':smoke' shrinks the run to seconds, ':phantom' uses the "
            "procedural phantom (ct.py:phantom,smoke), --config.KEY=VALUE sets one field "
            "(--config.sampler.steps=50)."),
    configs=configs.__name__,
    flags=(
        shared.Flag("workdir", "results root; the run folder is <workdir>/<config>/<time>.",
                    default="results", metavar="DIR"),
        shared.Flag("compilation_cache", "where compiled programs are kept for the next run "
                    "('': $JAX_COMPILATION_CACHE_DIR, else ~/.cache/iscs-jax/xla); 'off' "
                    "disables it.", default="", metavar="DIR|off"),
        shared.Flag("resume", "continue the newest unfinished run of this config in the "
                    "workdir from its last checkpoint (runs checkpoint every "
                    "checkpoint.every steps; e.g. --config.checkpoint.every=5).",
                    default=False, type=bool, metavar=""),
    ),
    renamed_keys=RENAMED_KEYS,
    interrupted="Interrupted: no result folder was written.")


def load_config(spec: str) -> tuple[ml_collections.ConfigDict, str]:
    """``(config, name)`` of ``NAME[:ARG]``, a shipped config or a path (`shared.load_config`)."""
    return shared.load_config(spec, PROGRAM.configs)


def apply_override(config: ml_collections.ConfigDict, key: str, raw: str) -> None:
    """Sets ``config.<key>`` from its command-line text (`shared.apply_override`)."""
    shared.apply_override(config, key, raw, RENAMED_KEYS)


def parse_args(argv: list[str]) -> types.SimpleNamespace:
    """The command line: ``config``, ``config_name``, ``workdir``, ``compilation_cache``,
    ``resume``, ``verbose``, ``help``."""
    return shared.parse(PROGRAM, argv)
