"""A package, so that tests/evaluation/test_cv.py and tests/training/test_cv.py (same basename) can both be collected."""
