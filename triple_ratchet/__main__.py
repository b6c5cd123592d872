import sys

from triple_ratchet.cli import main

sys.exit(main())
