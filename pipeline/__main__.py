"""``python -m pipeline`` runs the shipline command."""

import sys

from pipeline.cli import main

sys.exit(main())
