"""The ``alzmri`` command line: one short function per command over the library.

One module per concern: :mod:`~alzmri.cli.train`, :mod:`~alzmri.cli.evaluate` (evaluate,
calibrate), :mod:`~alzmri.cli.predict` (predict, export), :mod:`~alzmri.cli.serve`,
:mod:`~alzmri.cli.models`, :mod:`~alzmri.cli.compare` and :mod:`~alzmri.cli.data` (the
``alzmri data`` commands); :mod:`~alzmri.cli.tables` prints their results. This module
assembles the Typer app and holds the entry point, :func:`main`.

Every user error (:class:`alzmri.errors.AlzmriError`) prints one line, ``error: ...``,
and exits with code 2; no traceback.
"""

from __future__ import annotations

import typer
from rich.console import Console

from alzmri.cli import compare, data, evaluate, models, predict, serve, train
from alzmri.errors import AlzmriError

__all__ = ["app", "main"]

app = typer.Typer(help="Train, honestly evaluate and use brain-MRI classifiers of Alzheimer's severity.", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

# the order of `alzmri --help`
app.command()(train.train)
app.command()(evaluate.evaluate)
app.command()(predict.predict)
app.command("export")(predict.export_cmd)
app.command("calibrate")(evaluate.calibrate_cmd)
app.command("serve")(serve.serve_cmd)
app.command("models")(models.models_cmd)
app.command("compare")(compare.compare_cmd)
app.add_typer(data.data_app, name="data")

err = Console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``alzmri`` console script.

    Usage errors (unknown option, missing argument) are reported by Typer with the
    command's usage and exit code 2; :class:`AlzmriError` prints one line and exits 2.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``alzmri``; default: ``sys.argv[1:]``.

    Returns
    -------
    int
        The exit code: 0, 2 (usage or user error), or 130/143 for an interrupted run.
    """
    try:
        # standalone mode: Typer/Click print usage errors themselves and raise SystemExit
        app(args=argv, standalone_mode=True)
    except AlzmriError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        return getattr(exc, "exit_code", 2)  # 2, or 130/143 for an interrupted run (RunInterrupted)
    except KeyboardInterrupt:
        err.print("error: interrupted", markup=False)
        return 130
    except SystemExit as exc:
        if exc.code is None:
            return 0
        return exc.code if isinstance(exc.code, int) else 2
    return 0
