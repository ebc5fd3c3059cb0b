"""shancheng.sdk.host: what a command that runs servers and child processes on this machine needs — whether a
port can be listened on (:mod:`.ports`) and children that die with their parent (:mod:`.children`).

Shared by ``shancheng dev`` and the node (shancheng-nodes), ``shancheng district`` (shancheng-apps) and the test
harness, which may all import the SDK but not each other.

>>> from shancheng.sdk.host import port_free
>>> port_free("127.0.0.1", 0)
True
"""

from .children import die_with_parent
from .ports import port_free

__all__ = ["die_with_parent", "port_free"]
