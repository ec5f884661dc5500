"""MnasNet-style search: controller, reward, proxy accuracy, Pareto front, the loop."""
