"""`python -m caldera_client ...`: see caldera_client/cli.py."""
import sys

from caldera_client.cli import main

sys.exit(main())
