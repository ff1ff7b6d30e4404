import sys

from nmm_arena.cli import main

sys.exit(main())
