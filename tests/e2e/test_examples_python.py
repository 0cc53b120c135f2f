"""examples/python (publish.py, handoffs.py, lead.py) against a real funneld,
plain and with CURVE, on Debian's python3-zmq and python3-protobuf; each
program generates its funnel_pb2 from proto/funnel.proto with protoc. The
tests are in client_examples.py."""

import pytest

from client_examples import *  # noqa: F401,F403  (the tests, collected here)


@pytest.fixture
def lang():
    return "python"
