"""alzmri: train, honestly evaluate, compare, explain and serve brain-MRI classifiers
of Alzheimer's severity (NonDemented < VeryMildDemented < MildDemented < ModerateDemented)."""

__version__ = "0.1.0"
