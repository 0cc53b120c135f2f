"""Crash safety with four partitions (tools/crashtest --ci --partitions 4):
kills while the four partitions lag behind the log apart, each replaying
from its own applied sequence, each power loss recovering each partition
from its own checkpoint, and --rebuild into four. A file of its own so that
ctest runs it beside the default one (test_crash.py)."""

from test_crash import run_crashtest


def test_crashtest_ci_mode_four_partitions(tmp_path):
    run_crashtest(tmp_path, 4)
