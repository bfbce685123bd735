"""``python -m flowctx`` is the ``flowctx`` command."""
import sys

from flowctx.cli import main

sys.exit(main())
