"""latbench's own proxy trainer, written as a user's evaluator (`latbench search --evaluator`).

    latbench search --target-ms 3.3 --out runs/mine \
        --evaluator examples/evaluators/proxy_trainer.py:evaluate

gives the same accuracies as a search without `--evaluator`, from the same cache entries:
the default path is this object behind the same interface (latbench/proxy/evaluator.py).
Your own evaluator is any callable with that shape, e.g. in my_pkg/my_module.py:

    version = "3"                       # part of the cache key: bump it when you change it

    def evaluate(net):                  # net.arch: the sampled arch.json (a dict)
        model = net.model               # a fresh Keras model of it (logits out)
        ...train model on your data (net.seed, net.fidelity: share of your full training)...
        return {"accuracy": top1, "top5": top5}   # or just top1; in [0, 1]

and, optionally, `evaluate.network = lambda arch: ...` to train a transformed network (a
smaller input, your class count) instead of the sampled one, as the proxy trainer does.
Run it on Ray workers with `--ray-workers N --cpus-per-child C --gpus-per-child G`.
"""

from latbench.proxy.accuracy import ProxyTrainer
from latbench.proxy.data import load_fashion_mnist
from latbench.proxy.recipe import ProxyRecipe

# The search's default recipe on Fashion-MNIST (Debian: apt-get install dataset-fashion-mnist).
evaluate = ProxyTrainer(load_fashion_mnist(), ProxyRecipe())
