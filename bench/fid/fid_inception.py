"""fid_inception.py — pytorch-fid's FID InceptionV3 in PyTorch, for comparisons with ldmfid.

load(weights) gives the network pytorch-fid 0.3.0 builds for FID
(InceptionV3([3]) with use_fid_inception=True): pytorch_fid.inception itself
when it can be imported (its weight download replaced by the given file),
otherwise the definition below, written from pytorch-fid's inception.py:
torchvision's InceptionV3 blocks with the FID changes (average pools that do
not count padding in Mixed_5*, Mixed_6b..e and Mixed_7b; a max pool in
Mixed_7c's pool branch), 1008 classes. Input: N×3×H×W floats in [0,1],
resized to 299×299 (bilinear, align_corners=False) and mapped to [-1,1].
forward() returns pool3 (N×2048) and the logits fc(pool3) (N×1008).
"""
import collections
import os

import torch
import torch.nn as nn
import torch.nn.functional as F


def read_weights(path):
    """A state dict from a .pth/.pt/.bin (torch.load) or a .safetensors file."""
    if not path.endswith('.safetensors'):
        return torch.load(path, map_location='cpu')
    import json
    import struct
    import numpy as np
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    sd = collections.OrderedDict()
    for name, d in header.items():
        if name == '__metadata__':
            continue
        assert d['dtype'] == 'F32', name
        a, b = d['data_offsets']
        sd[name] = torch.from_numpy(np.frombuffer(data[a:b], '<f4').copy().reshape(d['shape']))
    return sd


class Conv(nn.Module):
    """BasicConv2d: conv without bias, BatchNorm (eps 0.001), ReLU."""

    def __init__(self, cin, cout, k, stride=1, pad=0):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=pad, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def avg3(x):
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    def __init__(self, cin, pool):
        super().__init__()
        self.branch1x1 = Conv(cin, 64, 1)
        self.branch5x5_1 = Conv(cin, 48, 1)
        self.branch5x5_2 = Conv(48, 64, 5, pad=2)
        self.branch3x3dbl_1 = Conv(cin, 64, 1)
        self.branch3x3dbl_2 = Conv(64, 96, 3, pad=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, pad=1)
        self.branch_pool = Conv(cin, pool, 1)

    def forward(self, x):
        return torch.cat([self.branch1x1(x), self.branch5x5_2(self.branch5x5_1(x)),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          self.branch_pool(avg3(x))], 1)


class BlockB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = Conv(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = Conv(cin, 64, 1)
        self.branch3x3dbl_2 = Conv(64, 96, 3, pad=1)
        self.branch3x3dbl_3 = Conv(96, 96, 3, stride=2)

    def forward(self, x):
        return torch.cat([self.branch3x3(x),
                          self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
                          F.max_pool2d(x, 3, stride=2)], 1)


class BlockC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = Conv(cin, 192, 1)
        self.branch7x7_1 = Conv(cin, c7, 1)
        self.branch7x7_2 = Conv(c7, c7, (1, 7), pad=(0, 3))
        self.branch7x7_3 = Conv(c7, 192, (7, 1), pad=(3, 0))
        self.branch7x7dbl_1 = Conv(cin, c7, 1)
        self.branch7x7dbl_2 = Conv(c7, c7, (7, 1), pad=(3, 0))
        self.branch7x7dbl_3 = Conv(c7, c7, (1, 7), pad=(0, 3))
        self.branch7x7dbl_4 = Conv(c7, c7, (7, 1), pad=(3, 0))
        self.branch7x7dbl_5 = Conv(c7, 192, (1, 7), pad=(0, 3))
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for i in range(1, 6):
            d = getattr(self, 'branch7x7dbl_%d' % i)(d)
        return torch.cat([self.branch1x1(x), b7, d, self.branch_pool(avg3(x))], 1)


class BlockD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = Conv(cin, 192, 1)
        self.branch3x3_2 = Conv(192, 320, 3, stride=2)
        self.branch7x7x3_1 = Conv(cin, 192, 1)
        self.branch7x7x3_2 = Conv(192, 192, (1, 7), pad=(0, 3))
        self.branch7x7x3_3 = Conv(192, 192, (7, 1), pad=(3, 0))
        self.branch7x7x3_4 = Conv(192, 192, 3, stride=2)

    def forward(self, x):
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, 'branch7x7x3_%d' % i)(b7)
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), b7,
                          F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    def __init__(self, cin, avg):
        super().__init__()
        self.avg = avg
        self.branch1x1 = Conv(cin, 320, 1)
        self.branch3x3_1 = Conv(cin, 384, 1)
        self.branch3x3_2a = Conv(384, 384, (1, 3), pad=(0, 1))
        self.branch3x3_2b = Conv(384, 384, (3, 1), pad=(1, 0))
        self.branch3x3dbl_1 = Conv(cin, 448, 1)
        self.branch3x3dbl_2 = Conv(448, 384, 3, pad=1)
        self.branch3x3dbl_3a = Conv(384, 384, (1, 3), pad=(0, 1))
        self.branch3x3dbl_3b = Conv(384, 384, (3, 1), pad=(1, 0))
        self.branch_pool = Conv(cin, 192, 1)

    def forward(self, x):
        t = self.branch3x3_1(x)
        u = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        p = avg3(x) if self.avg else F.max_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), self.branch3x3_2a(t), self.branch3x3_2b(t),
                          self.branch3x3dbl_3a(u), self.branch3x3dbl_3b(u),
                          self.branch_pool(p)], 1)


class FIDInception(nn.Module):
    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = Conv(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = Conv(32, 32, 3)
        self.Conv2d_2b_3x3 = Conv(32, 64, 3, pad=1)
        self.Conv2d_3b_1x1 = Conv(64, 80, 1)
        self.Conv2d_4a_3x3 = Conv(80, 192, 3)
        self.Mixed_5b = BlockA(192, 32)
        self.Mixed_5c = BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, 128)
        self.Mixed_6c = BlockC(768, 160)
        self.Mixed_6d = BlockC(768, 160)
        self.Mixed_6e = BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, True)
        self.Mixed_7c = BlockE(2048, False)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x):
        x = F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for name in ('5b', '5c', '5d', '6a', '6b', '6c', '6d', '6e', '7a', '7b', '7c'):
            x = getattr(self, 'Mixed_' + name)(x)
        pool = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return pool, self.fc(pool)


class PytorchFid(nn.Module):
    """pytorch_fid.inception.InceptionV3([3]) plus the fc of its network."""

    def __init__(self, sd):
        super().__init__()
        from pytorch_fid import inception
        real = inception.load_state_dict_from_url
        inception.load_state_dict_from_url = lambda *a, **k: sd
        try:
            self.net = inception.InceptionV3([3])
        finally:
            inception.load_state_dict_from_url = real
        self.fc = nn.Linear(2048, 1008)
        self.fc.load_state_dict({'weight': sd['fc.weight'], 'bias': sd['fc.bias']})

    def forward(self, x):
        pool = self.net(x)[0].flatten(1)
        return pool, self.fc(pool)


def load(weights, impl='auto'):
    """(model in eval mode, implementation name) for the weights file."""
    sd = read_weights(weights)
    if impl in ('auto', 'pytorch_fid'):
        try:
            net = PytorchFid(sd)
            return net.eval(), 'pytorch_fid'
        except ImportError:
            if impl == 'pytorch_fid':
                raise
    net = FIDInception()
    missing, unexpected = net.load_state_dict(sd, strict=False)
    bad = [k for k in missing + unexpected if not k.endswith('num_batches_tracked')]
    if bad:
        raise KeyError('weights do not fit the network: %s' % bad[:5])
    return net.eval(), 'own definition (%s)' % os.path.basename(__file__)
