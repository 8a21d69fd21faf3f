"""``alzmri models``: the registered models and scikit-learn baselines, with their defaults."""

from __future__ import annotations

import re

from rich.table import Table

from alzmri.cli.tables import out


def models_cmd() -> None:
    """List registered models and their defaults."""
    from alzmri.models import get_spec, list_models
    from alzmri.models.baselines import BASELINES

    t = Table("name", "image size", "description")
    for name in list_models():
        s = get_spec(name)
        t.add_row(name, str(s.image_size), s.description)
    for name, cls in BASELINES.items():  # scikit-learn baselines: brain level, one prediction per brain
        first = " ".join((cls.__doc__ or "").strip().split("\n\n")[0].split())
        t.add_row(name, "128", re.sub(r":\w+:`~?([^`]+)`|``([^`]+)``", lambda m: m.group(1) or m.group(2), first))
    out.print(t)
