"""Reference loss trajectory of the notebook's net under PyTorch: 12 Adam steps from fixed
weights on fixed batches, for the gradient check `train_trajectory_matches_pytorch`
(crates/recog/tests/train_trajectory.rs). Writes {"simple": [12 losses], "batchhard": [...]}
as JSON to stdout.

The weights and the data come from an integer hash, so that recog's test builds the very same
float32 values without a file: value(i, salt) = ((h(i, salt) mod 2001) - 1000) / 1000 with
h(i, salt) = (i * 2654435761 + salt * 40503) mod 2^32.
- weights: value * scale per tensor (conv1 1/3, conv2 1/sqrt(288), fc1 1/sqrt(9216), fc2
  1/sqrt(128)); biases value * 0.1. Salts 1..8 in the order conv1.w, conv1.b, conv2.w,
  conv2.b, fc1.w, fc1.b, fc2.w, fc2.b.
- batch b (0..4) of 300 images: labels [a, a, n] with a_i = (7i + 3b) mod 10 and
  n_i = (a_i + 1 + (5i + b) mod 9) mod 10; pixel (y, x) of an image of label l is
  +1 if (31l + 7y + 13x) mod 5 < 2 else -1, plus 2 * value(j, 100 + b) with j the pixel's
  index in the batch.
- no dropout (eval mode), Adam lr 1e-4 (betas 0.9/0.999, eps 1e-8), D = 64, no
  normalisation; the simple loss is the mean over 100 stacked triplets of
  relu(|a-p|^2 - |a-n|^2 + 1), batch-hard the mean over all 300 anchors of the hardest
  positive's and negative's squared distances, margin 1.

Usage: python3 train_trajectory_reference.py > crates/recog/tests/fixtures/train_trajectory_reference.json
Needs torch and numpy (PyPI).
"""
import json
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(2)


def value(n, salt):
    i = np.arange(n, dtype=np.uint64)
    h = (i * np.uint64(2654435761) + np.uint64(salt * 40503)) % np.uint64(2**32)
    return ((h % np.uint64(2001)).astype(np.float64) - 1000.0) / 1000.0


class MnistNet(nn.Module):
    def __init__(self, dim=64):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, dim)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2).flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


def batch(b):
    i = np.arange(100)
    a = (7 * i + 3 * b) % 10
    n = (a + 1 + (5 * i + b) % 9) % 10
    labels = np.concatenate([a, a, n])
    y, x = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    protos = np.stack([np.where((31 * l + 7 * y + 13 * x) % 5 < 2, 1.0, -1.0) for l in range(10)])
    px = protos[labels] + 2.0 * value(300 * 784, 100 + b).reshape(300, 28, 28)
    return torch.tensor(px.astype(np.float32)).reshape(300, 1, 28, 28), torch.tensor(labels)


def simple(emb):
    a, p, n = emb[:100], emb[100:200], emb[200:]
    return F.relu((a - p).pow(2).sum(1) - (a - n).pow(2).sum(1) + 1.0).mean()


def batch_hard(emb, labels):
    d = (emb[:, None, :] - emb[None, :, :]).pow(2).sum(2)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    hp = torch.where(same & ~eye, d, torch.full_like(d, -1.0)).max(1).values
    hn = torch.where(~same, d, torch.full_like(d, float("inf"))).min(1).values
    return F.relu(hp - hn + 1.0).mean()


def run(loss_name):
    net = MnistNet(64)
    scales = [1 / 3, 0.1, 1 / np.sqrt(288), 0.1, 1 / np.sqrt(9216), 0.1, 1 / np.sqrt(128), 0.1]
    with torch.no_grad():
        for salt, ((_, p), s) in enumerate(zip(net.named_parameters(), scales), start=1):
            v = (value(p.numel(), salt) * s).astype(np.float32)
            p.copy_(torch.tensor(v).reshape(p.shape))
    net.eval()
    opt = torch.optim.Adam(net.parameters(), lr=1e-4, eps=1e-8)
    data = [batch(b) for b in range(4)]
    losses = []
    for step in range(12):
        x, labels = data[step % 4]
        emb = net(x)
        loss = simple(emb) if loss_name == "simple" else batch_hard(emb, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(round(loss.item(), 7))
    return losses


if __name__ == "__main__":
    json.dump({"simple": run("simple"), "batchhard": run("batchhard")}, sys.stdout)
    print()
