"""`python -m distilabel_rs`: the `distilabel-rs` command."""

import sys

from distilabel_rs.cli import main

sys.exit(main())
