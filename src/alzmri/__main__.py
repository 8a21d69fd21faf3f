import sys

from alzmri.cli import main

sys.exit(main())
