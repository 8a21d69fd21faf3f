"""alzmri.training.signals: Ctrl-C (SIGINT) and SIGTERM stop a run with one line naming the kept checkpoint.

The runs are real ``alzmri train`` processes (tests/training/_killed_runs.py), started
through the hook launcher, which gives the child Python's Ctrl-C handler even when this
suite runs in the background with SIGINT ignored.
"""

from __future__ import annotations

import signal

import pytest

import _killed_runs as kr


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, how", [(signal.SIGINT, 130, "Ctrl-C"), (signal.SIGTERM, 143, "SIGTERM")])
def test_interrupt_prints_one_line_with_resume_command(setup, tmp_path, sig, code, how):
    out, err = tmp_path / "interrupted", tmp_path / "interrupted.err"
    proc = kr.start(setup, out, ("--step-delay", "0.3"), err)
    kr.wait_for(proc, err, "alzmri-test-hook: epoch 2 step 1")
    assert kr.kill(proc, sig) == code
    lines = kr.error_lines(err.read_text())
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: training interrupted ({how}); the last complete checkpoint is {out / 'checkpoints' / 'last.ckpt'} (epoch 1 of 3)")
    assert lines[0].endswith(f"continue with: alzmri train --out {out} --resume")
    assert kr.load(out / "checkpoints" / "last.ckpt")["epoch"] == 0
    assert len(kr.history(out)) == 1


def _ctrl_c(out, epochs=None, *, before=None):
    """What ``interruptions(out, epochs)`` makes of a KeyboardInterrupt (``before`` runs first inside it)."""
    from alzmri.errors import RunInterrupted
    from alzmri.training.signals import interruptions

    try:
        with interruptions(out, epochs):
            if before is not None:
                before()
            raise KeyboardInterrupt
    except RunInterrupted as exc:
        return exc
    except KeyboardInterrupt:
        pytest.fail("the KeyboardInterrupt came out as it was, not as RunInterrupted")
    pytest.fail("nothing was raised")


def test_interruptions_outside_fit_name_what_was_written_and_restore_the_handler(tmp_path):
    """KeyboardInterrupt (Ctrl-C outside Lightning's fit) becomes RunInterrupted; the SIGINT handler before is back."""

    def mine(signum, frame):  # a caller's own handler
        raise AssertionError("not called")

    previous = signal.signal(signal.SIGINT, mine)
    try:
        # Lightning ignores SIGINT after a first Ctrl-C; the handler from before comes back
        before_start = _ctrl_c(tmp_path / "run", 3, before=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, previous)
    assert before_start.exit_code == 130
    assert str(before_start) == (f"training interrupted (Ctrl-C) before the run folder {tmp_path / 'run'} was started; nothing "
                                 "was written; continue with: the same alzmri train command, without --resume")

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "config.yaml").write_text("model: altzcnn\n")
    started = _ctrl_c(tmp_path / "run")
    assert str(started) == (f"training interrupted (Ctrl-C); no epoch was completed, so no checkpoint was written; "
                            f"continue with: alzmri train --out {tmp_path / 'run'} --resume")
