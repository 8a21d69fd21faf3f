"""Model stage: the registry, the model families, weights and fine-tuning modes.

Registered: ``altzcnn`` (the notebook's CNN), ``resnet50``, ``efficientnet_b0``,
``mobilenet_v2``, ``vit_b_16`` (torchvision), ``efficientnet_lite0``, ``vit_tiny_scratch``
(timm), and any timm model as ``"timm:<name>"``.
"""

from alzmri.models.registry import ModelSpec, create_imagenet_model, create_model, get_spec, list_models, register_model, register_prefix

# importing a family module registers its models
from alzmri.models import altzcnn as _altzcnn  # noqa: E402,F401
from alzmri.models import timm_models as _timm_models  # noqa: E402,F401
from alzmri.models import torchvision_models as _torchvision_models  # noqa: E402,F401
from alzmri.models.adapters import FINETUNE_MODES, trainable_parameters  # noqa: E402
from alzmri.models.classifier import BackboneClassifier  # noqa: E402

__all__ = [
    "BackboneClassifier",
    "FINETUNE_MODES",
    "ModelSpec",
    "create_imagenet_model",
    "create_model",
    "get_spec",
    "list_models",
    "register_model",
    "register_prefix",
    "trainable_parameters",
]
