"""Networks as data: arch.json and block strings -> Arch -> LayerSpecs; search spaces; the zoo.

Takes a description (a file, a block string, a space's tokens) and gives frozen Arch
values whose `layers()` every later stage builds, times and predicts. Imports no stage.
"""
