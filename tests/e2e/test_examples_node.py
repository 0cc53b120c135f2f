"""examples/node (publish.js, handoffs.js, lead.js) against a real funneld,
plain and with CURVE, on the npm packages zeromq (zeromq.js v6) and
protobufjs (proto/funnel.proto loaded at run time), installed in
examples/node/node_modules by `npm ci` (tools/quickstart.sh test runs it).
The tests are in client_examples.py.

A source tree without node_modules (a fresh checkout) gets it from `npm ci`
here, once; without node, or when npm cannot install, these tests fail,
saying what to run: a missing install must not pass unnoticed.
FUNNELD_SKIP_NODE=1 skips them."""

import fcntl
import os
import shutil
import subprocess

import pytest

from client_examples import SRC
from client_examples import *  # noqa: F401,F403  (the tests, collected here)

if os.environ.get("FUNNELD_SKIP_NODE") == "1":
    pytest.skip("FUNNELD_SKIP_NODE=1: the Node examples are not tested", allow_module_level=True)


NODE_DIR = os.path.join(SRC, "examples", "node")


def installed():
    return all(os.path.isdir(os.path.join(NODE_DIR, "node_modules", p))
               for p in ("zeromq", "protobufjs"))


@pytest.fixture(scope="module")
def node_modules():
    """examples/node/node_modules, installed by `npm ci` from the committed
    package-lock.json when a source tree does not have it yet (a fresh
    worktree; tools/quickstart.sh test installs it before the suite), under
    a lock, so that parallel test runs of one tree install it once."""
    if shutil.which("node") is None:
        pytest.fail("node not found: install Debian's nodejs and npm (tools/quickstart.sh "
                    "does), or set FUNNELD_SKIP_NODE=1 to skip the Node examples")
    if installed():
        return
    if shutil.which("npm") is None:
        pytest.fail("%s/node_modules is missing and npm is not installed: install npm "
                    "and run `npm ci` there (tools/quickstart.sh test does), or set "
                    "FUNNELD_SKIP_NODE=1 to skip the Node examples" % NODE_DIR)
    with open(os.path.join(NODE_DIR, ".npm-ci.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not installed():
            r = subprocess.run(["npm", "ci", "--prefer-offline", "--no-audit", "--no-fund",
                                "--loglevel=error"], cwd=NODE_DIR, capture_output=True,
                               text=True, timeout=600)
            if r.returncode != 0 or not installed():
                pytest.fail("`npm ci` in %s failed (run it there by hand, or set "
                            "FUNNELD_SKIP_NODE=1 to skip the Node examples):\n%s%s"
                            % (NODE_DIR, r.stdout, r.stderr))


@pytest.fixture
def lang(node_modules):
    return "node"
