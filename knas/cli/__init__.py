"""The `knas` command line."""
