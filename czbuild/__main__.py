import sys

from czbuild.cli import main

sys.exit(main())
