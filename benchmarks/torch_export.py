"""A PyTorch-origin model for the operator-level benchmark (issue 22, section 4).

Exports a torchvision architecture built with random weights (weights=None: nothing is
downloaded) to .tflite with litert-torch (formerly ai-edge-torch). Run it in a scratch virtual
environment that has torch, torchvision and litert-torch (not the project's: they pin their
own TensorFlow), then give the file to latbench like any user's model:

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch torchvision litert-torch
    /tmp/torchvenv/bin/python benchmarks/torch_export.py runs/torch/resnet18_torch.tflite resnet18
    latbench predict runs/torch/resnet18_torch.tflite --compare
"""

import sys
from pathlib import Path


def main() -> None:
    out = Path(sys.argv[1])
    arch = sys.argv[2] if len(sys.argv) > 2 else "mobilenet_v3_small"
    import litert_torch
    import torch
    import torchvision

    model = getattr(torchvision.models, arch)(weights=None).eval()
    sample = (torch.randn(1, 3, 224, 224),)
    out.parent.mkdir(parents=True, exist_ok=True)
    litert_torch.convert(model, sample).export(str(out))
    print(f"{arch} -> {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
