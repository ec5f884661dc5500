"""The version, one source of truth: the package face, setup.cfg and every file header read it here."""

__version__ = "0.1.0"
