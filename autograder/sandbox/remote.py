"""What sandbox.kernel and sandbox.supervisor import by this name: the wire and the notebook's side of the boundary.

The protocol between the notebook's process and the test process is split by the side each part runs on:
sandbox.wire (the shared format: plain data as a JSON header and raw bytes), sandbox.notebook_side (what runs as
the notebook's user: serving its objects), sandbox.test_side (what runs as root in the test process: the proxies
the tests hold, and the rule that the test process computes everything a test computes). Nothing of the test side
is here.
"""
from .notebook_side import Server, StoppedByGrader, serve  # noqa: F401
from .wire import MAX_DEPTH, MAX_MESSAGE_BYTES, Connection, OverBudget, ProtocolError  # noqa: F401
