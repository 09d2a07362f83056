"""PyTorch side of `cxr-train bench --compare-pytorch PYTHON`: training images/s of torchvision's Inception-V3.

The same step the Burn side times (training/src/train/bench.rs): forward + backward + RMSProp update of
torchvision's `inception_v3` (no auxiliary head, dropout 0.5, 14 outputs; the gray variant's first convolution has
one input channel, as in the paper), `BCEWithLogitsLoss` against all-zero targets, RMSProp with alpha 0.9,
momentum 0.9, eps 1.0 and lr 1e-4, on a random N(0, 1) batch. One warm-up step, then `--steps` timed steps.
Prints one JSON object on stdout. `cxr-train` embeds this file, so the table always runs this exact code.

Runs as a file or as `python -c "$(cat train_pytorch.py)" ARGS`; needs `torch` and `torchvision` (PyPI).
"""

import argparse
import json
import sys
import time


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variant", choices=["color", "gray"], required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--input-size", type=int, default=299)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=0, help="intra-op CPU threads (0: PyTorch's default)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--precision", choices=["fp32", "tf32", "bf16", "fp16"], default="fp32",
                   help="tf32: TF32 matmul/conv on CUDA; bf16/fp16: torch.autocast (fp16 with a GradScaler)")
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format for model and input")
    a = p.parse_args(argv)

    import torch
    import torchvision

    if a.threads > 0:
        torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    torch.manual_seed(1)
    if device.type == "cuda":
        # PyTorch >= 2.9 spells TF32 as a per-backend fp32 precision; "ieee" keeps full FP32.
        fp32 = "tf32" if a.precision == "tf32" else "ieee"
        torch.backends.cuda.matmul.fp32_precision = fp32
        torch.backends.cudnn.conv.fp32_precision = fp32
        torch.backends.cudnn.benchmark = True

    model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True, num_classes=14)
    if a.variant == "gray":
        model.Conv2d_1a_3x3.conv = torch.nn.Conv2d(1, 32, kernel_size=3, stride=2, bias=False)
    channels = 1 if a.variant == "gray" else 3
    memory_format = torch.channels_last if a.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format).train()
    optim = torch.optim.RMSprop(model.parameters(), lr=1e-4, alpha=0.9, momentum=0.9, eps=1.0)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    x = torch.randn(a.batch, channels, a.input_size, a.input_size, device=device).to(memory_format=memory_format)
    y = torch.zeros(a.batch, 14, device=device)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(a.precision)
    scaler = torch.amp.GradScaler(device.type, enabled=a.precision == "fp16")

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    started = time.perf_counter()
    for step in range(a.steps + 1):
        if step == 1:
            sync()
            started = time.perf_counter()
        optim.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
            loss = loss_fn(model(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(optim)
        scaler.update()
    sync()
    elapsed = time.perf_counter() - started
    print(json.dumps({
        "framework": f"pytorch {torch.__version__}",
        "variant": a.variant,
        "batch": a.batch,
        "input_size": a.input_size,
        "steps": a.steps,
        "threads": torch.get_num_threads(),
        "device": str(device),
        "precision": a.precision,
        "channels_last": a.channels_last,
        "images_per_second": a.steps * a.batch / elapsed,
    }))


if __name__ == "__main__":
    main(sys.argv[1:])
