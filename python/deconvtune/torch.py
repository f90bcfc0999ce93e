"""The PyTorch drop-in for the user's Model (ConvTranspose2d -> Mish -> +add_value -> Hardtanh(-1, 1)
-> *scale): one fused, tuned kernel per shape.

    from deconvtune.torch import ConvTranspose2dEpilogue
    block = ConvTranspose2dEpilogue(*get_init_inputs()).cuda()   # the Model's own arguments
    block = ConvTranspose2dEpilogue.from_model(model)             # or an existing Model, its weights
    y = block(x)                                                  # x: CUDA, float32, contiguous NCHW

The module keeps the Model's parameter layout (conv_transpose.weight, conv_transpose.bias), so
state dicts load either way. It runs on torch's current CUDA stream of x's device, follows
torch.backends.cudnn.allow_tf32 for its precision (as nn.ConvTranspose2d does) unless given
precision='fp32' or 'tf32', and is the custom op torch.ops.deconvtune.conv_transpose2d_epilogue
so it works inside torch.compile (PyTorch >= 2.4; older PyTorch runs it eagerly only).
Inference only: no backward.
"""
import functools
import json
import threading
import typing

import torch
from torch import nn

from . import _native

OP_NAME = "deconvtune::conv_transpose2d_epilogue"

_lock = threading.Lock()
_engines = {}  # (device index, db_path, on_miss) -> Engine
_plans = {}  # (device index, db_path, on_miss, problem JSON) -> Plan


@functools.lru_cache(maxsize=256)
def _spec(problem):
    try:
        spec = json.loads(problem)
    except ValueError as e:
        raise ValueError(f"deconvtune: the problem is not JSON: {e}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"deconvtune: the problem must be a JSON object, got {problem!r}")
    return spec


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def output_shape(spec):
    """[N, C_out, H_out, W_out] of a problem spec, by PyTorch's ConvTranspose2d formula."""
    try:
        k, s, p = _pair(spec["kernel_size"]), _pair(spec.get("stride", 1)), _pair(spec.get("padding", 0))
        op, d = _pair(spec.get("output_padding", 0)), _pair(spec.get("dilation", 1))
        size = [(spec[f] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1
                for i, f in enumerate(("height", "width"))]
        return [spec["batch"], spec["out_channels"]] + size
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"deconvtune: problem {spec!r} lacks or mistypes a field ({e!r})") from None


def _check_inputs(x, weight, bias, spec):
    """Clear errors for what the kernel cannot take: device, dtype, shape, contiguity."""
    for name, t in (("x", x), ("weight", weight), ("bias", bias)):
        if t is None:
            continue
        if t.dtype != torch.float32:
            raise ValueError(f"deconvtune: {name} has dtype {t.dtype}; only torch.float32 is supported")
        if not t.is_contiguous():
            raise ValueError(f"deconvtune: {name} is not contiguous (NCHW); pass {name}.contiguous()"
                             + (" (channels_last is not supported)" if t.dim() == 4 else ""))
        if t.device.type != "cuda":
            raise ValueError(f"deconvtune: {name} is on {t.device}; ConvTranspose2dEpilogue runs on CUDA "
                             "tensors (move the module and the input with .cuda())")
        if t.device != x.device:
            raise ValueError(f"deconvtune: {name} is on {t.device} but x is on {x.device}")
    groups = spec.get("groups", 1)
    expected_x = [spec["batch"], spec["in_channels"], spec["height"], spec["width"]]
    if list(x.shape) != expected_x:
        raise ValueError(f"deconvtune: x has shape {list(x.shape)}, the problem expects {expected_x}")
    k = _pair(spec["kernel_size"])
    expected_w = [spec["in_channels"], spec["out_channels"] // groups, k[0], k[1]]
    if list(weight.shape) != expected_w:
        raise ValueError(f"deconvtune: weight has shape {list(weight.shape)}, the problem expects "
                         f"{expected_w} ([C_in, C_out/groups, kH, kW])")
    has_bias = spec.get("bias", True)
    if has_bias and bias is None:
        raise ValueError("deconvtune: the problem has a bias but bias is None")
    if not has_bias and bias is not None:
        raise ValueError("deconvtune: bias was given but the problem has none (\"bias\": false)")
    if bias is not None and list(bias.shape) != [spec["out_channels"]]:
        raise ValueError(f"deconvtune: bias has shape {list(bias.shape)}, expected [{spec['out_channels']}]")


def _plan(device_index, problem, db_path, on_miss):
    key = (device_index, db_path, on_miss, problem)
    plan = _plans.get(key)
    if plan is None:
        with _lock:
            plan = _plans.get(key)
            if plan is None:
                engine_key = key[:3]
                engine = _engines.get(engine_key)
                if engine is None:
                    engine = _native.Engine(db_path or None, on_miss, "fp32", device_index)
                    _engines[engine_key] = engine
                plan = engine.plan(problem)
                _plans[key] = plan
    return plan


def _run(x, weight, bias, problem, db_path, on_miss):
    spec = _spec(problem)
    _check_inputs(x, weight, bias, spec)
    plan = _plan(x.device.index, problem, db_path, on_miss)
    y = torch.empty(plan.output_shape, dtype=x.dtype, device=x.device)
    stream = torch.cuda.current_stream(x.device).cuda_stream
    plan.run(x.data_ptr(), weight.data_ptr(), 0 if bias is None else bias.data_ptr(), y.data_ptr(), stream)
    return y


if hasattr(torch, "library") and hasattr(torch.library, "custom_op"):
    # Registered for every device type, so that a CPU tensor reaches _check_inputs' clear error
    # rather than the dispatcher's "no kernel for the CPU backend".
    @torch.library.custom_op(OP_NAME, mutates_args=())
    def conv_transpose2d_epilogue(x: torch.Tensor, weight: torch.Tensor, bias: typing.Optional[torch.Tensor],
                                  problem: str, db_path: str, on_miss: str) -> torch.Tensor:
        return _run(x, weight, bias, problem, db_path, on_miss)

    @conv_transpose2d_epilogue.register_fake
    def _(x, weight, bias, problem, db_path, on_miss):
        spec = _spec(problem)
        _check_inputs(x, weight, bias, spec)
        return x.new_empty(output_shape(spec))

    HAS_CUSTOM_OP = True
else:  # PyTorch < 2.4: eager only
    def conv_transpose2d_epilogue(x, weight, bias, problem, db_path, on_miss):
        return _run(x, weight, bias, problem, db_path, on_miss)

    HAS_CUSTOM_OP = False

conv_transpose2d_epilogue.__doc__ = (
    "y = epilogue(conv_transpose2d(x, weight, bias)) for `problem` (JSON with PyTorch's argument "
    "names, batch/height/width those of x), planned by the engine of x's device for `db_path` ('' for "
    "the default DB) and `on_miss` ('heuristic', 'tune' or 'fail').")


class ConvTranspose2dEpilogue(nn.Module):
    """The user's Model as one fused kernel: same constructor arguments, same parameters.

    Extra keyword arguments: groups, dilation, bias (as nn.ConvTranspose2d); epilogue (a chain such
    as "mish,add:0.5,hardtanh:-1:1,mul:2", replacing the one add_value and scale give); precision
    (None: follow torch.backends.cudnn.allow_tf32; or 'fp32' / 'tf32'); db_path (None: the default
    tuning DB); on_miss ('heuristic', 'tune' or 'fail'); device and dtype (as nn.ConvTranspose2d).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0,
                 add_value=0.5, scale=2.0, *, groups=1, bias=True, dilation=1, epilogue=None,
                 precision=None, db_path=None, on_miss="heuristic", device=None, dtype=None):
        super().__init__()
        if precision not in (None, "fp32", "tf32"):
            raise ValueError(f"precision must be None, 'fp32' or 'tf32', got {precision!r}")
        if on_miss not in _native.ON_MISS:
            raise ValueError(f"on_miss must be one of {sorted(_native.ON_MISS)}, got {on_miss!r}")
        self.conv_transpose = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding,
                                                 output_padding, groups=groups, bias=bias, dilation=dilation,
                                                 device=device, dtype=dtype)
        self.add_value = add_value
        self.scale = scale
        self.epilogue = epilogue or f"mish,add:{float(add_value)!r},hardtanh:-1:1,mul:{float(scale)!r}"
        self.precision = precision
        self.db_path = db_path
        self.on_miss = on_miss
        # The problem JSON without the input's batch and size and the precision: forward() only
        # appends those, with string operations that torch.compile traces without a graph break.
        conv = self.conv_transpose
        fixed = json.dumps({
            "in_channels": conv.in_channels, "out_channels": conv.out_channels,
            "kernel_size": list(conv.kernel_size), "stride": list(conv.stride), "padding": list(conv.padding),
            "output_padding": list(conv.output_padding), "dilation": list(conv.dilation), "groups": conv.groups,
            "bias": conv.bias is not None, "epilogue": self.epilogue})
        self._problem_prefix = fixed[:-1] + ", "

    @classmethod
    def from_model(cls, model, **kwargs):
        """A module computing what `model` (the seed Model: conv_transpose, add_value, scale) computes,
        with a copy of its weights, on its device. kwargs as for the constructor (precision, ...)."""
        conv = getattr(model, "conv_transpose", None)
        if not isinstance(conv, nn.ConvTranspose2d):
            raise TypeError(f"from_model expects the seed Model (a .conv_transpose nn.ConvTranspose2d, "
                            f".add_value and .scale); {type(model).__name__} has no ConvTranspose2d "
                            "'conv_transpose'")
        for attribute in ("add_value", "scale"):
            if not isinstance(getattr(model, attribute, None), (int, float)):
                raise TypeError(f"from_model expects the seed Model; {type(model).__name__}.{attribute} "
                                "is missing or not a number")
        if conv.padding_mode != "zeros":
            raise ValueError(f"from_model: padding_mode {conv.padding_mode!r} is not supported (only 'zeros')")
        module = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     conv.output_padding, model.add_value, model.scale, groups=conv.groups,
                     bias=conv.bias is not None, dilation=conv.dilation, device=conv.weight.device,
                     dtype=conv.weight.dtype, **kwargs)
        loaded = module.load_state_dict(model.state_dict(), strict=False)
        if loaded.missing_keys:
            raise TypeError(f"from_model: {type(model).__name__}'s state dict lacks {loaded.missing_keys}")
        module.train(model.training)
        return module

    def problem(self, x_shape, precision):
        """The problem JSON for an input of `x_shape` in `precision`."""
        if len(x_shape) != 4:
            raise ValueError(f"deconvtune: x must be 4-D NCHW [N, C_in, H, W], got shape {list(x_shape)}")
        n, c, h, w = x_shape
        if c != self.conv_transpose.in_channels:
            raise ValueError(f"deconvtune: x has {c} channels, the module expects {self.conv_transpose.in_channels}")
        return (self._problem_prefix + '"batch": ' + str(int(n)) + ', "height": ' + str(int(h)) + ', "width": '
                + str(int(w)) + ', "precision": "' + precision + '"}')

    def current_precision(self):
        if self.precision is not None:
            return self.precision
        return "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"

    def plan(self, x):
        """The deconvtune Plan (config name, where it came from) that forward(x) runs."""
        return _plan(x.device.index, self.problem(x.shape, self.current_precision()), self.db_path or "",
                     self.on_miss)

    def forward(self, x):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"deconvtune: x must be a torch.Tensor, got {type(x).__name__}")
        problem = self.problem(x.shape, self.current_precision())
        return conv_transpose2d_epilogue(x, self.conv_transpose.weight, self.conv_transpose.bias, problem,
                                         self.db_path or "", self.on_miss)

    def extra_repr(self):
        return f"epilogue={self.epilogue!r}, precision={self.precision or 'follows allow_tf32'}"
