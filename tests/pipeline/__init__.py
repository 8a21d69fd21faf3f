"""A package, so that tests/pipeline/test_runs.py and tests/test_runs.py, and its test_cv.py and tests/training/test_cv.py (same basenames), can all be collected."""
