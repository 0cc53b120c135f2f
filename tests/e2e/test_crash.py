"""Crash safety: tools/crashtest in CI mode (SIGKILL >= 20 times while a
reliable publisher and funnelctl publish feed funneld, every third restart
staged as a power loss, checkpoints taken meanwhile; then every acked
event is in the log exactly once and the state equals a rebuild)."""

import json
import os
import subprocess
import sys

from conftest import FUNNELCTL_BIN, FUNNELD_BIN

CRASHTEST = os.path.join(os.environ.get("FUNNELD_SOURCE_DIR", ""), "tools", "crashtest")


def test_crashtest_ci_mode(tmp_path):
    run_crashtest(tmp_path, None)


def run_crashtest(tmp_path, partitions):
    """tools/crashtest --ci with funneld's default partition count (None)
    or the one given (test_crash_partitions.py: 4), and its figures
    checked."""
    env = dict(os.environ, TMPDIR=str(tmp_path))
    more = [] if partitions is None else ["--partitions", str(partitions)]
    if os.environ.get("FUNNELD_SANITIZER") == "thread":
        # ThreadSanitizer runs funneld about ten times slower: 21 kills
        # (7 power losses) over 40,000 events keep every assertion below
        # meaningful at a third of the CI mode's time.
        more += ["--kills", "21", "--events", "40000"]
    r = subprocess.run([sys.executable, CRASHTEST, "--ci", "--json",
                        "--funneld", FUNNELD_BIN, "--funnelctl", FUNNELCTL_BIN,
                        "--pyproto", os.environ["FUNNELD_PYPROTO"]] + more,
                       capture_output=True, text=True, timeout=400, env=env)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    fig = json.loads([l for l in r.stdout.splitlines() if l.startswith("{")][-1])
    assert fig["kills"] >= 20, out
    assert fig["kills_in_commit"] >= 1, out
    assert fig["events_acked"] == fig["events_recovered"] > 0, out
    assert fig["dup_applied_twice"] == 0, out
    assert fig["dup_injected_copies"] > 0 and fig["dup_injected_stream"] > 0, out
    assert fig["rebuild_exit"] == 0, out
    # checkpoints were written while funneld was being killed, and a staged
    # power loss right after an awaited checkpoint was recovered from it
    assert fig["power_losses"] >= 5 and fig["checkpoints_written"] >= 1, out
    assert fig["forced_checkpoints"] >= 1 and fig["forced_checkpoint_seq"] > 0, out
    assert fig["restores_from_checkpoint"] >= 1, out
    print(out)
