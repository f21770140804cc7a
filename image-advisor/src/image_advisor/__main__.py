import sys

from image_advisor.cli import main

sys.exit(main())
