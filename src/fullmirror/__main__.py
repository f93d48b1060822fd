from fullmirror.cli import main

raise SystemExit(main())
