"""Model stage: the registry and the model families."""

from alzmri.models.registry import ModelSpec, create_model, get_spec, list_models, register_model

# importing a family module registers its models
from alzmri.models import altzcnn as _altzcnn  # noqa: E402,F401

__all__ = ["ModelSpec", "create_model", "get_spec", "list_models", "register_model"]
