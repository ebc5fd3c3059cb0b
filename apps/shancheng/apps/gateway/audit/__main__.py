"""``python -m shancheng.apps.gateway.audit verify EXPORT --genesis FILE``."""

import sys

from .export import main

sys.exit(main())
