#!/usr/bin/python3
"""Generate golden test data for deconvtune.

Each problem is a ConvTranspose2d followed by an elementwise epilogue chain.
For every problem this script writes tests/golden/<name>.json holding the
problem description, the float32 inputs (x, weight, bias) and the reference
output y computed in float64 on the CPU with PyTorch.

Run with Debian's system interpreter, which has torch:

    /usr/bin/python3 tests/golden/make_goldens.py

The output is deterministic: re-running produces byte-identical files.
Every golden is cross-checked against an independent NumPy implementation
(direct scatter-add convolution plus closed-form epilogue formulas) before
it is written.
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

OUT_DIR = os.path.dirname(os.path.abspath(__file__))

SEED_CHAIN = "mish,add:0.5,hardtanh:-1:1,mul:2"

# Spread (RMS) we aim for in the pre-activation (conv output before the
# epilogue). PyTorch's default init gives |pre-activation| well below 1 for
# these tiny problems, which would leave mish/gelu/hardtanh/... in their
# boring near-linear region. An RMS of 1.5 puts most values in about [-4, 4].
TARGET_PRE_STD = 1.5
# Bias is drawn uniformly from [-BIAS_BOUND, BIAS_BOUND].
BIAS_BOUND = 0.75

# Every epilogue op and the number of colon-separated arguments it takes.
OP_ARITY = {
    "mish": 0, "add": 1, "mul": 1, "hardtanh": 2, "relu": 0,
    "leaky_relu": 1, "gelu": 0, "silu": 0, "sigmoid": 0, "tanh": 0,
    "softplus": 0, "clamp": 2,
}


def P(name, batch, cin, cout, hw, kernel, stride=1, padding=0,
      output_padding=0, dilation=1, groups=1, bias=True, epilogue=SEED_CHAIN):
    """Build one problem description; scalars are expanded to [h, w] pairs."""
    def pair(v):
        return [v, v] if isinstance(v, int) else list(v)

    return {
        "name": name,
        "problem": {
            "batch": batch, "in_channels": cin, "out_channels": cout,
            "height": hw[0], "width": hw[1],
            "kernel_size": pair(kernel), "stride": pair(stride),
            "padding": pair(padding), "output_padding": pair(output_padding),
            "dilation": pair(dilation), "groups": groups, "bias": bias,
            "epilogue": epilogue, "precision": "fp32",
        },
    }


# The problem set. Comments say what each one is there to cover; together they
# span strides 1/2/3 (and unequal pairs), padding 0/1/2, output_padding > 0,
# dilation 1/2, groups 1/2/4, bias on/off, non-square kernels and inputs, odd
# sizes, batch 1/2/3 and every epilogue op.
PROBLEMS = [
    # The seed shape's parameters at a small size.
    P("seed_small", 2, 8, 8, (6, 6), 3, stride=2, padding=1, output_padding=1),
    # Seed-like, with odd channel counts and a non-square input.
    P("stride2_seedlike", 2, 4, 6, (5, 7), 3, stride=2, padding=1,
      output_padding=1),
    # Bare convolution (empty chain), stride 1, no padding, odd 7x5 input.
    P("stride1_bare", 1, 3, 5, (7, 5), 3, epilogue=""),
    # Kernel 5 with stride 3, padding 2, output_padding 2.
    P("k5_stride3_outpad2", 1, 3, 5, (4, 5), 5, stride=3, padding=2,
      output_padding=2, epilogue="gelu,mul:1.5"),
    # Unequal stride [1, 2], non-square kernel [2, 3], mixed padding/outpad.
    P("stride1x2_k2x3", 2, 4, 3, (5, 6), (2, 3), stride=(1, 2),
      padding=(0, 1), output_padding=(0, 1),
      epilogue="leaky_relu:0.1,clamp:-0.5:0.75"),
    # Dilation 2 with stride 1 and padding 2 on an odd 9x11 input.
    P("dilation2_9x11", 1, 5, 6, (9, 11), 3, padding=2, dilation=2,
      epilogue="silu,add:-0.25"),
    # Dilation 2 and stride 2 together, output_padding 1.
    P("dilation2_stride2_outpad1", 2, 4, 4, (5, 5), 3, stride=2, padding=1,
      output_padding=1, dilation=2, epilogue="sigmoid"),
    # groups=2, no bias, batch 3.
    P("groups2_nobias_batch3", 3, 4, 6, (5, 5), 3, stride=2, padding=1,
      output_padding=1, groups=2, bias=False, epilogue="tanh,softplus"),
    # groups=4 with a tall [5, 1] kernel and unequal stride [2, 1].
    P("groups4_k5x1", 1, 8, 8, (6, 7), (5, 1), stride=(2, 1),
      padding=(2, 0), groups=4, epilogue="relu"),
    # groups=4 with one input channel per group, stride 3, output_padding 2.
    P("groups4_stride3_outpad2", 1, 4, 8, (4, 6), 3, stride=3,
      output_padding=2, groups=4),
    # Seed chain without bias, more inputs than outputs, odd 7x5 input.
    P("nobias_seed_7x5", 1, 6, 3, (7, 5), 3, stride=2, padding=1,
      output_padding=1, bias=False),
    # Even kernel 4 with stride 2 and padding 2, batch 3, plain mish.
    P("k4_stride2_pad2_batch3", 3, 3, 5, (4, 6), 4, stride=2, padding=2,
      epilogue="mish"),
    # 1x1 kernel with stride 2: some outputs receive no input (bias only).
    P("k1_stride2_holes", 2, 5, 3, (5, 5), 1, stride=2, output_padding=1,
      epilogue="hardtanh:-0.5:0.5,add:0.25"),
    # Stride 3 with dilation 2; output_padding 2 is legal as < max(3, 2).
    P("stride3_dil2_k3x2", 1, 3, 6, (5, 4), (3, 2), stride=3, padding=1,
      output_padding=(2, 1), dilation=2, epilogue="softplus,mul:-1,sigmoid"),
    # Long chain, groups=2, unequal stride [2, 3] and kernel [3, 4].
    P("groups2_stride2x3_longchain", 2, 2, 4, (3, 5), (3, 4), stride=(2, 3),
      padding=(1, 0), groups=2,
      epilogue="silu,mul:2,tanh,add:0.1,clamp:-0.9:0.9"),
    # Stride 1, padding 1, kernel [2, 3], non-square 5x9 input, exact gelu.
    P("stride1_pad1_k2x3_gelu", 1, 6, 5, (5, 9), (2, 3), padding=1,
      epilogue="gelu"),
]


# --------------------------------------------------------------------------
# Epilogue parsing and the two implementations (torch reference, numpy check)
# --------------------------------------------------------------------------

def parse_chain(text):
    """'add:0.5,hardtanh:-1:1' -> [('add', [0.5]), ('hardtanh', [-1.0, 1.0])]."""
    ops = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, *args = item.split(":")
        if name not in OP_ARITY:
            raise ValueError(f"unknown epilogue op {name!r}")
        if len(args) != OP_ARITY[name]:
            raise ValueError(f"{name} takes {OP_ARITY[name]} args: {item!r}")
        ops.append((name, [float(a) for a in args]))
    return ops


def epilogue_torch(v, ops):
    """The golden epilogue: PyTorch's own ops, in float64."""
    for name, a in ops:
        if name == "mish":
            v = F.mish(v)
        elif name == "add":
            v = v + a[0]
        elif name == "mul":
            v = v * a[0]
        elif name == "hardtanh":
            v = F.hardtanh(v, a[0], a[1])
        elif name == "relu":
            v = F.relu(v)
        elif name == "leaky_relu":
            v = F.leaky_relu(v, a[0])
        elif name == "gelu":
            v = F.gelu(v)  # default approximate='none': exact erf form
        elif name == "silu":
            v = F.silu(v)
        elif name == "sigmoid":
            v = torch.sigmoid(v)
        elif name == "tanh":
            v = torch.tanh(v)
        elif name == "softplus":
            v = F.softplus(v, beta=1, threshold=20)
        elif name == "clamp":
            v = torch.clamp(v, a[0], a[1])
        else:
            raise AssertionError(name)
    return v


_erf = np.vectorize(math.erf, otypes=[np.float64])


def epilogue_numpy(v, ops):
    """Independent closed-form versions of the same ops, for cross-checking."""
    for name, a in ops:
        if name == "mish":
            v = v * np.tanh(np.log1p(np.exp(v)))
        elif name == "add":
            v = v + a[0]
        elif name == "mul":
            v = v * a[0]
        elif name in ("hardtanh", "clamp"):
            v = np.minimum(np.maximum(v, a[0]), a[1])
        elif name == "relu":
            v = np.maximum(v, 0.0)
        elif name == "leaky_relu":
            v = np.where(v > 0, v, a[0] * v)
        elif name == "gelu":
            v = 0.5 * v * (1.0 + _erf(v / math.sqrt(2.0)))
        elif name == "silu":
            v = v / (1.0 + np.exp(-v))
        elif name == "sigmoid":
            v = 1.0 / (1.0 + np.exp(-v))
        elif name == "tanh":
            v = np.tanh(v)
        elif name == "softplus":
            v = np.where(v > 20, v, np.log1p(np.exp(np.minimum(v, 20))))
        else:
            raise AssertionError(name)
    return v


def conv_transpose_numpy(x, w, b, stride, padding, output_padding, groups,
                         dilation):
    """Direct scatter-add definition of ConvTranspose2d, in float64.

    Input pixel (ih, iw) through kernel tap (kh, kw) lands on output pixel
    (ih*sH - pH + kh*dH, iw*sW - pW + kw*dW); contributions outside the
    output are dropped.
    """
    n, cin, h, wd = x.shape
    _, cout_g, kh_n, kw_n = w.shape
    cin_g = cin // groups
    ho = (h - 1) * stride[0] - 2 * padding[0] + dilation[0] * (kh_n - 1) \
        + output_padding[0] + 1
    wo = (wd - 1) * stride[1] - 2 * padding[1] + dilation[1] * (kw_n - 1) \
        + output_padding[1] + 1
    y = np.zeros((n, cout_g * groups, ho, wo))
    for g in range(groups):
        xg = x[:, g * cin_g:(g + 1) * cin_g]           # [n, cin_g, h, w]
        wg = w[g * cin_g:(g + 1) * cin_g]              # [cin_g, cout_g, kh, kw]
        yg = y[:, g * cout_g:(g + 1) * cout_g]         # view into y
        for kh in range(kh_n):
            for kw in range(kw_n):
                # [n, cout_g, h, w]: every input pixel through this tap.
                contrib = np.einsum("nihw,io->nohw", xg, wg[:, :, kh, kw])
                for ih in range(h):
                    oh = ih * stride[0] - padding[0] + kh * dilation[0]
                    if not 0 <= oh < ho:
                        continue
                    for iw in range(wd):
                        ow = iw * stride[1] - padding[1] + kw * dilation[1]
                        if 0 <= ow < wo:
                            yg[:, :, oh, ow] += contrib[:, :, ih, iw]
    if b is not None:
        y += b[None, :, None, None]
    return y


# --------------------------------------------------------------------------
# Data generation
# --------------------------------------------------------------------------

def round_sig(v, digits=2):
    """Round to a few significant digits.

    The weight scale is derived from a float64 reduction; rounding it keeps the
    written float32 weights independent of the last bits of that reduction.
    """
    return float(f"{v:.{digits - 1}e}")


def make_golden(index, spec):
    p = spec["problem"]
    conv_args = dict(stride=p["stride"], padding=p["padding"],
                     output_padding=p["output_padding"], groups=p["groups"],
                     dilation=p["dilation"])
    gen = torch.Generator().manual_seed(1000 + index)

    # Uniform in [-1, 1): both signs, never all-zero.
    def uniform(*shape):
        return torch.rand(*shape, generator=gen, dtype=torch.float32) * 2 - 1

    x = uniform(p["batch"], p["in_channels"], p["height"], p["width"])
    w_raw = uniform(p["in_channels"], p["out_channels"] // p["groups"],
                    *p["kernel_size"])
    b_raw = uniform(p["out_channels"])  # drawn even without bias: fixed stream

    # Scale the weights so the pre-activation has an RMS of about
    # TARGET_PRE_STD. Output pixels that no input reaches (strided layouts
    # with holes) are left out of the RMS, else they would inflate the scale.
    pre = F.conv_transpose2d(x.double(), w_raw.double(), None, **conv_args)
    rms = pre[pre != 0].square().mean().sqrt().item()
    w = w_raw * round_sig(TARGET_PRE_STD / rms)  # float32 multiply
    b = b_raw * BIAS_BOUND if p["bias"] else None

    # Golden output in float64 from the float32 values.
    ops = parse_chain(p["epilogue"])
    b64 = b.double() if b is not None else None
    pre = F.conv_transpose2d(x.double(), w.double(), b64, **conv_args)
    y = epilogue_torch(pre, ops)

    # Independent cross-checks.
    pre_np = conv_transpose_numpy(
        x.double().numpy(), w.double().numpy(),
        None if b is None else b.double().numpy(), p["stride"], p["padding"],
        p["output_padding"], p["groups"], p["dilation"])
    assert pre_np.shape == tuple(pre.shape), (spec["name"], pre_np.shape)
    np.testing.assert_allclose(pre.numpy(), pre_np, rtol=1e-12, atol=1e-12,
                               err_msg=spec["name"] + ": conv")
    y_np = epilogue_numpy(pre_np, ops)
    np.testing.assert_allclose(y.numpy(), y_np, rtol=1e-12, atol=1e-12,
                               err_msg=spec["name"] + ": epilogue")
    assert torch.isfinite(y).all(), spec["name"] + ": non-finite output"
    assert y.numel() <= 3000, (spec["name"], y.numel())

    record = {
        "name": spec["name"],
        "problem": p,
        # float32 -> Python float is exact; json writes the shortest repr
        # that round-trips, so readers recover the float32 value exactly.
        "x": x.flatten().tolist(),
        "weight": w.flatten().tolist(),
        "bias": [] if b is None else b.tolist(),
        "y": y.flatten().tolist(),
    }
    stats = (tuple(y.shape), pre.min().item(), pre.max().item())
    return record, stats


def dump(record):
    """JSON with one top-level key per line and each array on a single line."""
    lines = []
    for key, value in record.items():
        sep = (", ", ": ") if key == "problem" else (",", ":")
        lines.append(f" {json.dumps(key)}: "
                     f"{json.dumps(value, separators=sep, allow_nan=False)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def check_coverage():
    """Fail loudly if an edit to PROBLEMS drops a required case."""
    names = [s["name"] for s in PROBLEMS]
    assert len(names) == len(set(names)), "duplicate problem names"
    chains = [s["problem"]["epilogue"] for s in PROBLEMS]
    used = {op for c in chains for op, _ in parse_chain(c)}
    missing = set(OP_ARITY) - used
    assert not missing, f"epilogue ops not covered: {sorted(missing)}"
    assert "" in chains, "no bare-convolution problem"
    assert "seed_small" in names


def main():
    check_coverage()
    torch.set_num_threads(1)  # keep the float64 reductions in a fixed order
    for index, spec in enumerate(PROBLEMS):
        record, (shape, lo, hi) = make_golden(index, spec)
        path = os.path.join(OUT_DIR, spec["name"] + ".json")
        with open(path, "w", encoding="ascii", newline="\n") as f:
            f.write(dump(record))
        print(f"{spec['name']:30s} y{list(shape)} pre-activation "
              f"[{lo:+.2f}, {hi:+.2f}] '{spec['problem']['epilogue']}'")


if __name__ == "__main__":
    sys.exit(main())
