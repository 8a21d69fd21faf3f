"""Test hooks that slow down, stall or poison an alzmri run, so that a test can kill it at a chosen moment.

alzmri itself has no test hooks; they are installed from here, by patching, in the test
process (:func:`add_trainer_callbacks`) or in a subprocess started as::

    python tests/_train_hooks.py [--step-delay S] [--stall-checkpoint-epoch E] [--nan-at-epoch E] ALZMRI-ARGS...

which installs the hooks given and then runs ``alzmri ALZMRI-ARGS...`` (the console
script's ``main``) in the same process:

``--step-delay S``
    after every training step print ``alzmri-test-hook: epoch E step S`` on stderr and
    sleep ``S`` seconds;
``--stall-checkpoint-epoch E``
    when a checkpoint of epoch ``E`` (1-based) is written, pass half of its bytes to the
    atomic write (:func:`alzmri.utils.io.atomic_write_chunks`, so into the temporary
    file), print ``alzmri-test-hook: stalled writing PATH`` on stderr and sleep for an
    hour (a slow disk, to kill the process mid-write);
``--nan-at-epoch E``
    at the start of epoch ``E`` fill the model's first parameter with NaN (so the loss of
    its first step is NaN).

The hooks change no number. They reach every process of the run: Lightning re-runs this
script for the other ranks of a ``--devices N`` run (it re-runs ``sys.argv``), and an
``alzmri compare`` row worker is started through this script too.

SIGINT is reset to Python's ``KeyboardInterrupt`` handler first: a test suite started in
the background (``nohup make test &``) hands its children SIGINT as *ignored*, and
Python keeps it so, which would make the Ctrl-C tests wait for nothing.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

HERE = Path(__file__).resolve()
#: this script, to start as ``[sys.executable, SCRIPT, *hooks, *alzmri_args]``
SCRIPT = str(HERE)
PREFIX = "alzmri-test-hook:"
_WORKER = "--comparison-worker"  # run alzmri.comparison._worker instead of the CLI


def hook_callbacks(*, step_delay: float | None = None, nan_at_epoch: int | None = None) -> list:
    """The Lightning callbacks for ``--step-delay`` and ``--nan-at-epoch`` (none when both are None)."""
    import torch
    from lightning.pytorch.callbacks import Callback

    class TestHooks(Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if nan_at_epoch is not None and trainer.current_epoch + 1 == nan_at_epoch:
                with torch.no_grad():
                    next(pl_module.parameters()).fill_(float("nan"))

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            if step_delay is not None:
                print(f"{PREFIX} epoch {trainer.current_epoch + 1} step {batch_idx + 1}", file=sys.stderr, flush=True)
                time.sleep(step_delay)

    return [TestHooks()] if step_delay is not None or nan_at_epoch is not None else []


def add_trainer_callbacks(patch, callbacks: list) -> None:
    """Make every Lightning ``Trainer`` built from now on also run ``callbacks`` (after its own).

    ``patch`` is ``setattr``-like: pytest's ``monkeypatch.setattr`` (undone after the
    test), or plain :func:`setattr` in a subprocess.
    """
    from lightning.pytorch import Trainer

    real_init = Trainer.__init__

    def init(self, *args, **kwargs):
        own = kwargs.get("callbacks") or []
        kwargs["callbacks"] = [*(own if isinstance(own, list) else [own]), *callbacks]
        real_init(self, *args, **kwargs)

    patch(Trainer, "__init__", init)


def stall_checkpoint(patch, epoch: int) -> None:
    """``--stall-checkpoint-epoch``: stall the atomic write of every checkpoint of ``epoch`` (1-based) halfway."""
    from alzmri.training import checkpointing

    real_save, real_write = checkpointing.AtomicCheckpointIO.save_checkpoint, checkpointing.atomic_write_chunks

    def half_then_sleep(path, chunks: Iterable[bytes]) -> Iterator[bytes]:
        data = b"".join(bytes(c) for c in chunks)
        yield data[: len(data) // 2]
        print(f"{PREFIX} stalled writing {path}", file=sys.stderr, flush=True)
        time.sleep(3600)
        yield data[len(data) // 2:]

    def save_checkpoint(self, checkpoint, path, storage_options=None):
        if int(checkpoint.get("epoch", -1)) + 1 != epoch:
            return real_save(self, checkpoint, path, storage_options)
        patch(checkpointing, "atomic_write_chunks", lambda p, chunks: real_write(p, half_then_sleep(p, chunks)))
        try:
            return real_save(self, checkpoint, path, storage_options)
        finally:
            patch(checkpointing, "atomic_write_chunks", real_write)

    patch(checkpointing.AtomicCheckpointIO, "save_checkpoint", save_checkpoint)


def _through_this_script(hook_args: list[str]) -> None:
    """Start ``alzmri compare``'s row workers with this script and the same hooks."""
    from alzmri.comparison import rows

    real = rows._run_worker

    def run_worker(cmd: list[str]):
        assert cmd[1:3] == ["-m", "alzmri.comparison._worker"], cmd
        return real([cmd[0], str(HERE), *hook_args, _WORKER, *cmd[3:]])

    rows._run_worker = run_worker


def main(argv: list[str]) -> int:
    signal.signal(signal.SIGINT, signal.default_int_handler)
    parser = argparse.ArgumentParser(prog="_train_hooks.py", add_help=False)
    parser.add_argument("--step-delay", type=float)
    parser.add_argument("--stall-checkpoint-epoch", type=int)
    parser.add_argument("--nan-at-epoch", type=int)
    n = _hook_args_end(argv)
    hooks, rest = parser.parse_args(argv[:n]), argv[n:]
    callbacks = hook_callbacks(step_delay=hooks.step_delay, nan_at_epoch=hooks.nan_at_epoch)
    if callbacks:
        add_trainer_callbacks(setattr, callbacks)
    if hooks.stall_checkpoint_epoch is not None:
        stall_checkpoint(setattr, hooks.stall_checkpoint_epoch)
    if rest[:1] == ["compare"]:
        _through_this_script(argv[:n])
    if rest[:1] == [_WORKER]:
        from alzmri.comparison._worker import main as worker

        return worker(*rest[1:])
    from alzmri.cli import main as alzmri

    return alzmri(rest)


def _hook_args_end(argv: list[str]) -> int:
    """Where the hook options (``--name VALUE`` pairs) end and alzmri's arguments begin."""
    n = 0
    while n < len(argv) and argv[n] in ("--step-delay", "--stall-checkpoint-epoch", "--nan-at-epoch"):
        n += 2
    return n


if __name__ == "__main__":
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE.parent]  # tests/ holds folders named like packages
    sys.exit(main(sys.argv[1:]))
