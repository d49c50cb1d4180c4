"""The ``drum`` command line: small subcommands, each a thin layer over the library."""
