"""The web UI's files (``static/``), served by :mod:`shancheng.apps.gateway.routes.ui`."""
