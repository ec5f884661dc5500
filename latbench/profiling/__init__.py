"""Profiling: time converted models on a device and keep the numbers.

Takes .tflite files from build/ and a Device from devices/; gives layer LUTs (layers.py,
lut.py), whole-network measurements (networks.py) and the inventory of a LUT folder.
Operator-level LUTs for any model (a .tflite a user brings) belong here too, beside layers.py.
"""
