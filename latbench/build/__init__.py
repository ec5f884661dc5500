"""Building: LayerSpec / Arch -> Keras -> .tflite (fp32 | int8), cut per layer, cached by hash.

Takes what nets/ describes and gives .tflite files on disk; TensorFlow is imported only
inside the functions (and worker processes) that build or convert.
"""
