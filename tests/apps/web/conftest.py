"""The browser fixtures of the web UI tests; the helpers live in ``_web_support`` (test modules never import a
conftest: every folder's conftest is the module ``conftest``)."""

from __future__ import annotations

from _web_support import browser, hospital, launch, pharmacy, urls  # noqa: F401 - fixtures, registered by being here
