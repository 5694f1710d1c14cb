"""weights.py — the golden test InceptionV3-FID weights as a file ldmfid and pytorch-fid read.

usage: weights.py OUT.safetensors|OUT.pth [TENSORS_TSV]

The weights are those of ../shared/data/golden/README.md ("Inception weights
formula"): tensor j of tensors.tsv, element i, from a 32-bit hash of (i, j),
scaled per kind of tensor, cast to float32. A .pth file is a torch.save of
the state dict in pytorch-fid's names, with the BatchNorms'
num_batches_tracked (int64) as torch writes them; a .safetensors file holds
the float32 tensors alone (written with numpy, no safetensors package needed).
"""
import json
import os
import struct
import sys

import numpy as np


def read_tsv(path):
    """[(j, name, shape)] from tensors.tsv."""
    out = []
    with open(path) as f:
        for line in f:
            if line.startswith('#') or not line.strip():
                continue
            j, name, shape = line.split()
            out.append((int(j), name, tuple(int(s) for s in shape.split('x'))))
    return out


def formula(j, name, shape):
    """The README's formula for tensor j: float32 array of `shape`."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.uint64)
    x = (i * 0x9E3779B1 + (j + 1) * 0x85EBCA77) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
    x ^= x >> 12
    x = (x * 0x297A2D39) & 0xFFFFFFFF
    x ^= x >> 15
    u = x.astype(np.float64) / 2.0**32
    leaf = name.rsplit('.', 1)[1]
    if 'running_var' in name:
        v = 0.5 + u
    elif 'running_mean' in name:
        v = 0.1 * (2 * u - 1)
    elif '.bn.' in name:
        v = 0.8 + 0.4 * u if leaf == 'weight' else 0.2 * (2 * u - 1)
    elif leaf == 'bias':
        v = 0.01 * (2 * u - 1)
    else:
        fan = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        v = (2 * u - 1) * np.sqrt(6.0 / fan)
    return v.astype(np.float32).reshape(shape)


def write_safetensors(path, tensors):
    """tensors: {name: float32 array}; data in name order, 8-byte aligned header."""
    header, off, blobs = {}, 0, []
    for name in sorted(tensors):
        b = np.ascontiguousarray(tensors[name], dtype='<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(tensors[name].shape),
                        'data_offsets': [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__.split('\n\n')[1])
    out = sys.argv[1]
    data = os.environ.get('LDM_TEST_DATA', '../shared/data')
    tsv = sys.argv[2] if len(sys.argv) == 3 else os.path.join(data, 'golden/inception_fid/tensors.tsv')
    tensors = {name: formula(j, name, shape) for j, name, shape in read_tsv(tsv)}
    if out.endswith('.safetensors'):
        write_safetensors(out, tensors)
        return
    import collections
    import torch
    sd = collections.OrderedDict()
    for name, v in tensors.items():
        sd[name] = torch.from_numpy(v)
        if name.endswith('.bn.running_var'):
            sd[name[:-len('running_var')] + 'num_batches_tracked'] = torch.tensor(0, dtype=torch.int64)
    torch.save(sd, out + '.tmp')
    os.replace(out + '.tmp', out)


if __name__ == '__main__':
    main()
