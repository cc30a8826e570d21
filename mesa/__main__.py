import sys

from mesa.cli import main

sys.exit(main())
