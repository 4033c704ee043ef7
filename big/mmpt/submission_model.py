"""BIG code submission: an mm-PT baseline exported by ``big export`` (this file is its model.py).

Self-contained: numpy + torch only (runs with torch 2.3.1 on Python 3.10, the gpu310 image) for
ResNet-18/34 and ViT (patch16) backbones, re-implemented in plain PyTorch with timm's parameter
names. Other backbones are rebuilt with timm, which the stock image does not have: they need the
project's docker image. ``bn_mode: per_dataset`` models keep one set of BatchNorm running statistics
per dataset (rows of the running_mean/var arrays, in ``bn_datasets`` order); ``predict`` puts the
predicted dataset's set into the BatchNorm layers first. The weights (``weights.npz``, fp16 by default) and ``model_config.json``
lie beside this file and are found relative to it.

API: ``Model().predict(dataset, images)`` with images uint8 (B,S,S) or (B,S,S,3) at
``Model.resolution`` -> (B,C) float scores in [0,1]: softmax (binary: 2 columns) or sigmoid
(chestmnist).
"""
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
CONFIG = json.loads((HERE / "model_config.json").read_text())


# ---------------------------------------------------------------------------------------------
# ResNet (timm resnet18/resnet34: BasicBlock, 7x7 stem, max-pool, conv+bn shortcut)
# ---------------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        return F.relu(x + shortcut)


class ResNet(nn.Module):
    def __init__(self, layers, widths=(64, 128, 256, 512)):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        cin = widths[0]
        for i, (n, w) in enumerate(zip(layers, widths)):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(cin, w, 2 if (j == 0 and i > 0) else 1))
                cin = w
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.num_features = cin

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))


# ---------------------------------------------------------------------------------------------
# ViT (timm VisionTransformer: class token, learned position embedding, pre-norm blocks)
# ---------------------------------------------------------------------------------------------

class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(x.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, hidden)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, dim, patch):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class ViT(nn.Module):
    def __init__(self, dim, depth, heads, hidden, patch, n_tokens):
        super().__init__()
        self.patch_embed = PatchEmbed(dim, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads, hidden) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.num_features = dim

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        x = self.norm(self.blocks(x))
        return x[:, 0]


def plain_backbone(arch, weights):
    """Build the plain-PyTorch backbone whose shapes match ``weights`` (timm keys, 'backbone.' stripped)."""
    if arch == "resnet":
        layers = [len({k.split(".")[1] for k in weights if k.startswith(f"layer{i}.")}) for i in range(1, 5)]
        return ResNet(layers)
    if arch == "vit":
        dim = weights["cls_token"].shape[-1]
        depth = len({k.split(".")[1] for k in weights if k.startswith("blocks.")})
        hidden = weights["blocks.0.mlp.fc1.weight"].shape[0]
        patch = weights["patch_embed.proj.weight"].shape[-1]
        return ViT(dim, depth, CONFIG["num_heads"], hidden, patch, weights["pos_embed"].shape[1])
    raise ValueError(f"no plain implementation for {arch!r}")


def timm_backbone(cfg):
    import timm  # not in the stock gpu310 image: other backbones need the project's docker image

    return timm.create_model(cfg["model"], pretrained=False, num_classes=0, **cfg.get("model_kwargs", {}))


_BN_STATS = ("running_mean", "running_var", "num_batches_tracked")


def split_bn_stats(backbone_weights, datasets):
    """per_dataset: {dataset: {key: that dataset's row}} of every BatchNorm statistic, and the
    weights with the first dataset's rows in place (so the backbone loads strictly)."""
    per = {d: {} for d in datasets}
    out = dict(backbone_weights)
    for k, v in backbone_weights.items():
        if k.rsplit(".", 1)[-1] in _BN_STATS:
            if v.shape[0] != len(datasets):
                raise ValueError(f"{k}: {v.shape[0]} rows of BatchNorm statistics for {len(datasets)} datasets")
            for i, d in enumerate(datasets):
                per[d][k] = v[i]
            out[k] = v[0]
    return per, out


def load_weights(path=HERE / "weights.npz"):
    with np.load(path) as z:
        return {k: torch.from_numpy(z[k].astype(np.float32) if z[k].dtype.kind == "f" else z[k]) for k in z.files}


class Model:
    """An mm-PT baseline: shared backbone, one linear head per dataset."""

    resolution = int(CONFIG["img_size"])

    def __init__(self, *args, device=None, **kwargs):
        cfg = CONFIG
        w = load_weights()
        bb = {k[len("backbone."):]: v for k, v in w.items() if k.startswith("backbone.")}
        self.bn_stats = None
        if cfg.get("bn_mode") == "per_dataset":
            self.bn_stats, bb = split_bn_stats(bb, cfg["bn_datasets"])
        self.bn_dataset = None
        if cfg["arch"] in ("resnet", "vit"):
            self.backbone = plain_backbone(cfg["arch"], bb)
        else:
            self.backbone = timm_backbone(cfg)
        self.backbone.load_state_dict(bb, strict=True)
        self.heads = nn.ModuleDict()
        for flag, c in cfg["heads"].items():
            head = nn.Linear(self.backbone.num_features, int(c))
            head.load_state_dict({"weight": w[f"heads.{flag}.weight"], "bias": w[f"heads.{flag}.bias"]})
            self.heads[flag] = head
        self.multilabel = set(cfg["multilabel"])
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.backbone.to(self.device).eval()
        self.heads.to(self.device).eval()
        self.mean = torch.tensor(cfg["mean"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.pad_to = cfg["pad_to"]
        self.batch_size = int(cfg.get("batch_size", 64))

    def preprocess(self, images):
        """Exactly as in training: /255, grey -> 3 channels, normalise, zero-pad (after normalising)."""
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        if x.dim() == 3:
            x = x.unsqueeze(-1)
        x = x.permute(0, 3, 1, 2).to(torch.float32).div_(255.0)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = (x - self.mean) / self.std
        s = x.shape[-1]
        if self.pad_to and self.pad_to != s:
            a = (self.pad_to - s) // 2
            x = F.pad(x, (a, self.pad_to - s - a, a, self.pad_to - s - a), value=0.0)
        return x

    def use_dataset(self, dataset):
        """per_dataset: put ``dataset``'s BatchNorm statistics into the backbone (once per switch)."""
        if self.bn_stats is not None and self.bn_dataset != dataset:
            self.backbone.load_state_dict(self.bn_stats[dataset], strict=False)
            self.bn_dataset = dataset

    @torch.no_grad()
    def predict(self, dataset, images):
        if dataset not in self.heads:
            raise KeyError(f"no head for dataset {dataset!r}")
        self.use_dataset(dataset)
        images = np.asarray(images)
        out = []
        for a in range(0, images.shape[0], self.batch_size):
            logits = self.heads[dataset](self.backbone(self.preprocess(images[a:a + self.batch_size]))).float()
            s = torch.sigmoid(logits) if dataset in self.multilabel else torch.softmax(logits, dim=1)
            out.append(s.cpu().numpy())
        if not out:
            return np.zeros((0, self.heads[dataset].out_features), dtype=np.float32)
        return np.concatenate(out)
