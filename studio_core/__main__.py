"""``python -m studio_core …`` runs the CLI."""

import sys

from studio_core.cli.main import main

sys.exit(main())
