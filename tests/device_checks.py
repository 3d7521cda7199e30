"""Subprocesses of the tests that need their own JAX: fake CPU devices, several processes.

A process that has already imported JAX (pytest's) cannot change its device count, so every
multi-device check runs a fresh Python here: `run_python` (``python ARGS`` on CPU with this
checkout importable, ``devices`` fake CPU devices), `run_check` (a check script of this
folder that prints one JSON dict on the last line of its stdout; the scripts set their own
``XLA_FLAGS`` before importing JAX) and `run_processes` (several such commands at once, e.g.
the processes of one ``jax.distributed`` run on localhost, `local_address`).
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

TESTS = pathlib.Path(__file__).resolve().parent
ROOT = TESTS.parent


def _env(devices: int | None) -> dict:
    """os.environ with the checkout first on PYTHONPATH, JAX on CPU and, with ``devices``,
    that many fake CPU devices (without, XLA_FLAGS is removed: a script sets its own)."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("XLA_FLAGS", None)
    if devices is not None:
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    return env


def run_python(*args: str, devices: int | None = None, cwd=ROOT,
               timeout: int = 600) -> subprocess.CompletedProcess:
    """``python *args`` (a script, ``-m module`` or ``-c code``) in ``cwd``; its completed
    process with text stdout and stderr (not checked)."""
    return subprocess.run([sys.executable, *args], cwd=cwd, env=_env(devices),
                          capture_output=True, text=True, timeout=timeout)


def run_check(script: str, *args: str, timeout: int = 600) -> dict:
    """``python tests/<script> *args``; asserts it succeeded, returns its JSON report."""
    proc = run_python(str(TESTS / script), *args, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_processes(commands: list[list[str]], *, devices: int | None = None, cwd=ROOT,
                  timeout: int = 600) -> list[subprocess.CompletedProcess]:
    """``python *command`` for every command at once (each with ``devices`` fake CPU
    devices), waiting for all; their completed processes, in order (not checked)."""
    env = _env(devices)
    procs = [subprocess.Popen([sys.executable, *command], cwd=cwd, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for command in commands]
    try:
        outputs = [proc.communicate(timeout=timeout) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:  # one hung (e.g. waiting for a peer that died): stop all
                proc.kill()
                proc.communicate()
    return [subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
            for proc, (out, err) in zip(procs, outputs)]


def local_address() -> str:
    """``127.0.0.1:PORT`` with a free port: a coordinator address for `run_processes`."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"
