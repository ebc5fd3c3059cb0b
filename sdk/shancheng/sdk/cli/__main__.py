"""``python -m shancheng.sdk.cli``: the ``shancheng`` console script."""

import sys

from .main import main

sys.exit(main())
