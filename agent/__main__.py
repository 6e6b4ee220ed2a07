"""`python -m agent run --spec step.json`."""

import sys

from agent import main

sys.exit(main())
