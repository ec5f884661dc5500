"""latbench: measured-latency, platform-aware NAS for mobile CNNs."""

__version__ = "0.1.0"
