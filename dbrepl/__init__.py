"""dbrepl: provision a dev/staging/prod Aurora MySQL estate and sync between its environments."""

__version__ = "0.1.0"
