from fullmirror.cli import main

# Guarded: a sync child process (fullmirror.shards) imports the parent's main module.
if __name__ == "__main__":
    raise SystemExit(main())
