"""`python -m meshdoctor`: the same command line as the `meshdoctor` script."""

from meshdoctor.cli.main import main

raise SystemExit(main())
