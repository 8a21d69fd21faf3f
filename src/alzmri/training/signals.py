"""Ctrl-C (SIGINT) and SIGTERM during a run: one line naming the kept checkpoint and the resume command."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alzmri.errors import RunInterrupted
from alzmri.training.checkpointing import describe_last_checkpoint


@contextmanager
def interruptions(out: str | os.PathLike, epochs: int | None = None) -> Iterator[None]:
    """Turn Ctrl-C (SIGINT) and SIGTERM during a run into :class:`~alzmri.errors.RunInterrupted`.

    Lightning answers Ctrl-C inside ``fit`` with ``sys.exit(1)`` (after ignoring further
    SIGINTs) and SIGTERM with its ``SIGTERMException`` after the current step; outside
    ``fit`` Python raises ``KeyboardInterrupt``. All become one line naming the kept
    checkpoint and the resume command, exit code 130 (SIGINT) or 143 (SIGTERM). The
    SIGINT handler in place before is restored.

    Parameters
    ----------
    out : path-like
        The run folder.
    epochs : int, optional
        The run's epochs (for the message).
    """
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    previous = signal.getsignal(signal.SIGINT)
    try:
        yield
    except SIGTERMException:
        raise _interrupted(out, "SIGTERM", epochs) from None
    except KeyboardInterrupt:
        raise _interrupted(out, "Ctrl-C", epochs) from None
    except SystemExit as exc:
        if isinstance(exc.__context__, KeyboardInterrupt):  # Lightning's sys.exit(1) after a KeyboardInterrupt
            raise _interrupted(out, "Ctrl-C", epochs) from None
        raise
    finally:
        if previous is not None:
            try:
                signal.signal(signal.SIGINT, previous)
            except ValueError:  # not the main thread: Lightning did not change it either
                pass


def _interrupted(out: str | os.PathLike, how: str, epochs: int | None) -> RunInterrupted:
    out = Path(out)
    code = 128 + (signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)
    if not (out / "config.yaml").is_file():
        return RunInterrupted(f"training interrupted ({how}) before the run folder {out} was started; nothing was written",
                              "the same alzmri train command, without --resume", exit_code=code)
    return RunInterrupted(f"training interrupted ({how}); {describe_last_checkpoint(out / 'checkpoints', epochs)}",
                          f"alzmri train --out {out} --resume", exit_code=code)
