import sys

from fullmirror.fakepypi.cli import main

raise SystemExit(main(sys.argv[1:]))
