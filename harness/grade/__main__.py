import sys

from harness.grade.cli import main

sys.exit(main())
