"""Calibration: fit predictors on measured whole networks, and judge them on held-out ones.

Takes LUTs and network measurements from profiling/; gives predictor files (calibrate.py),
held-out metrics and plots (validate.py) and the check against Keras' own networks.
"""
