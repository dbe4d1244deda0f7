"""PyTorch peer for `recog bench train` on any device (CPU threads or a CUDA GPU).

The notebook's net (Conv32 3x3, Conv64 3x3, MaxPool 2, Dense 128, Dense D) and one Adam step
(lr 1e-3, eps 1e-8) on 300 images, with the two losses `recog bench train` times:
  - `notebook`: 100 random (A, P, N) triplets, squared distance, margin 1, D = 2;
  - `batchhard`: D = 64 on 10 classes x 30 images, hardest positive and negative per anchor
    (recog's default step mines semi-hard negatives; batch-hard is the closest PyTorch one-liner,
    and both are one pairwise-distance matrix plus masks).
Each step ends with `loss.item()`, which waits for the device, so host-clock times are whole
steps, as recog's are.

  python tools/bench/torch_train_peer.py [--device cuda] [--steps 50] [--warmup 5]

Outside CI. Prints one 'RESULT ...' line per loss.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# The reference's import pins 2 threads for its fixture; this peer keeps PyTorch's default.
DEFAULT_THREADS = torch.get_num_threads()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from train_trajectory_reference import MnistNet, simple  # noqa: E402


class TrainNet(MnistNet):
    """The trajectory reference's net with the notebook's dropout, as in training."""

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.dropout(F.max_pool2d(x, 2), 0.25, self.training).flatten(1)
        x = F.dropout(F.relu(self.fc1(x)), 0.5, self.training)
        return self.fc2(x)


def batch_hard_loss(emb, labels, margin=0.2):
    emb = F.normalize(emb, dim=1)
    d = torch.cdist(emb, emb)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=emb.device)
    hardest_pos = (d * (same & ~eye)).max(1).values
    hardest_neg = (d + same * 1e9).min(1).values
    return F.relu(hardest_pos - hardest_neg + margin).mean()


def run(loss_name, device, steps, warmup):
    torch.manual_seed(0)
    dim = 2 if loss_name == "notebook" else 64
    net = TrainNet(dim).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, eps=1e-8)
    g = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(8):
        if loss_name == "notebook":
            ca = torch.randint(0, 10, (100,), generator=g)
            labels = torch.cat([ca, ca, (ca + torch.randint(1, 10, (100,), generator=g)) % 10])
        else:
            labels = torch.arange(10).repeat_interleave(30)
        x = torch.randn(300, 1, 28, 28, generator=g) + labels.view(-1, 1, 1, 1) * 0.1
        batches.append((x.to(device), labels.to(device)))
    # The notebook's loss is the trajectory reference's `simple` (100 stacked triplets).
    loss_fn = (lambda emb, labels: simple(emb)) if loss_name == "notebook" else batch_hard_loss
    net.train()
    times = []
    for step in range(warmup + steps):
        x, labels = batches[step % len(batches)]
        t0 = time.perf_counter()
        loss = loss_fn(net(x), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss.item()
        times.append(time.perf_counter() - t0)
    t = np.array(times[warmup:]) * 1000
    print(
        f"RESULT fw=torch-{torch.__version__} device={device} threads={torch.get_num_threads()} "
        f"loss={loss_name} steps={steps} step_ms_median={np.median(t):.2f} step_ms_mean={t.mean():.2f}",
        flush=True,
    )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    a = p.parse_args()
    torch.set_num_threads(a.threads or DEFAULT_THREADS)
    for loss_name in ["notebook", "batchhard"]:
        run(loss_name, a.device, a.steps, a.warmup)


if __name__ == "__main__":
    main()
