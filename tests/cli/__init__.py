"""A package, so that tests/cli/test_train.py and tests/training/test_train.py (same basename) can both be collected."""
