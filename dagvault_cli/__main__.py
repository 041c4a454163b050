import sys

from dagvault_cli.main import main

sys.exit(main())
