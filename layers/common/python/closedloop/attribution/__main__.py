"""``python -m closedloop.attribution PATHS.csv --model markov``: see :mod:`closedloop.attribution.cli`."""

from closedloop.attribution.cli import main

raise SystemExit(main())
