"""``python -m fsrbench`` (also ``torchrun -m fsrbench train ...``)."""
import sys

from fsrbench.cli import main

sys.exit(main())
