"""examples/node (publish.js, handoffs.js, lead.js) against a real funneld,
plain and with CURVE, on the npm packages zeromq (zeromq.js v6) and
protobufjs (proto/funnel.proto loaded at run time), installed in
examples/node/node_modules by `npm ci` (tools/quickstart.sh test runs it).
The tests are in client_examples.py.

Without node or node_modules these tests fail, saying what to run: a missing
install must not pass unnoticed. FUNNELD_SKIP_NODE=1 skips them."""

import os
import shutil

import pytest

from client_examples import SRC
from client_examples import *  # noqa: F401,F403  (the tests, collected here)

if os.environ.get("FUNNELD_SKIP_NODE") == "1":
    pytest.skip("FUNNELD_SKIP_NODE=1: the Node examples are not tested", allow_module_level=True)


@pytest.fixture
def lang():
    node_dir = os.path.join(SRC, "examples", "node")
    if shutil.which("node") is None:
        pytest.fail("node not found: install Debian's nodejs and npm (tools/quickstart.sh "
                    "does), or set FUNNELD_SKIP_NODE=1 to skip the Node examples")
    for pkg in ("zeromq", "protobufjs"):
        if not os.path.isdir(os.path.join(node_dir, "node_modules", pkg)):
            pytest.fail("%s/node_modules/%s is missing: run `npm ci` in %s "
                        "(tools/quickstart.sh test does), or set FUNNELD_SKIP_NODE=1 to "
                        "skip the Node examples" % (node_dir, pkg, node_dir))
    return "node"
