import sys

from mlit.cli import main

sys.exit(main())
