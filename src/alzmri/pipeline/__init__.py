"""The pipeline: train -> evaluate -> write figures and the model card, in one place.

Training (:mod:`alzmri.training`) fits and writes the model files; evaluation
(:mod:`alzmri.evaluation`) computes metrics and returns them; reporting
(:mod:`alzmri.reporting`) draws and writes. Only this package chains them, so each of
those packages imports only the ones below it (MONAI keeps the same glue in
``monai/handlers``). ``alzmri train`` / ``alzmri evaluate`` / ``alzmri calibrate`` and
``import alzmri``'s verbs call these functions.
"""

from alzmri.pipeline.brains import train_brain, train_brain_cv
from alzmri.pipeline.cv import train_cv
from alzmri.pipeline.runs import calibrate, evaluate, train

__all__ = ["calibrate", "evaluate", "train", "train_brain", "train_brain_cv", "train_cv"]
