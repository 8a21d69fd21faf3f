"""Warnings for the user: one yellow line on stderr each (rich), never a traceback."""

from __future__ import annotations

from rich.console import Console


def print_warning(message: str) -> None:
    """Print ``warning: <message>`` on stderr (yellow on a terminal, plain otherwise).

    Parameters
    ----------
    message : str
        One sentence; printed without rich markup interpretation.
    """
    Console(stderr=True).print(f"warning: {message}", style="yellow", markup=False, highlight=False, soft_wrap=True)


def print_note(message: str) -> None:
    """Print ``note: <message>`` on stderr: something the user should know that is not a problem.

    Parameters
    ----------
    message : str
        One sentence; printed without rich markup interpretation.
    """
    Console(stderr=True).print(f"note: {message}", markup=False, highlight=False, soft_wrap=True)
