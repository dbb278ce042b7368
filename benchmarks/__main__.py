"""``python -m benchmarks``: run every section and write the report."""

from .run import main

raise SystemExit(main())
