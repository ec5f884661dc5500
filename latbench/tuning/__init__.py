"""Tuning one network: NetAdapt's channel shrinking and EfficientNet's compound scaling.

Takes a seed Arch, a latency model (predictors/) and proxy accuracy (proxy/); gives tuned
networks with their measured or predicted latency.
"""
