"""Proxy accuracy: train a network briefly on a small dataset and report its accuracy.

Takes an Arch and a ProxyRecipe; gives accuracies (cached) for search/ and tuning/, and the
proxy-validity study (validity.py). Imports neither search nor tuning.
"""
