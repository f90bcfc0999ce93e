"""deconvtune for PyTorch: ConvTranspose2d followed by an elementwise epilogue as one fused, tuned
kernel per shape, trainable, with a CPU path and an automatic conversion of existing models.

    import deconvtune.torch as dtorch
    block = dtorch.ConvTranspose2dEpilogue(64, 64, 3, 2, 1, 1, epilogue="mish,add:0.5,hardtanh:-1:1,mul:2")
    block = dtorch.ConvTranspose2dEpilogue.from_model(model)      # the seed Model, with its weights
    fast = dtorch.convert(decoder, example_inputs=(x,))           # every ConvTranspose2d + chain in a model
    y = dtorch.conv_transpose2d_epilogue(x, w, b, 2, 1, 1, epilogue="relu")   # the functional form
    fast = torch.compile(decoder, backend="deconvtune")           # after dtorch.enable(); torch >= 2
    results = dtorch.autotune(decoder, (x,), budget_s=600)        # its problems, tuned into the DB

The module's constructor is nn.ConvTranspose2d's (same arguments, same positions) plus the epilogue
and precision as keywords; its parameters are conv_transpose.weight and conv_transpose.bias, so
the seed Model's state dict loads either way. On CUDA tensors (float32, bfloat16 or float16, all
three of one dtype; x contiguous or channels_last) it runs deconvtune's kernel on torch's current
stream, in the precision given ('fp32' or 'tf32'; None follows torch.backends.cudnn.allow_tf32 as
nn.ConvTranspose2d does), and returns y in x's dtype and memory format, as nn.ConvTranspose2d does.
Under torch.autocast on CUDA the inputs are cast to autocast's dtype first, as autocast casts
conv_transpose2d's. On CPU tensors it runs the
same function with PyTorch's own ops. Backward, on either device, is PyTorch's (see _backward).

On PyTorch >= 2.4 the forward is the custom op torch.ops.deconvtune.conv_transpose2d_epilogue (with
an autograd formula and a fake kernel), so it works inside torch.compile; older PyTorch (Debian's
1.13, say) runs it eagerly through a torch.autograd.Function.
"""
import copy
import functools
import json
import math
import threading
import typing

import torch
import torch.nn.functional as F
from torch import nn

from . import _native

__all__ = ["ConvTranspose2dEpilogue", "conv_transpose2d_epilogue", "convert", "ConversionRecord", "parse_epilogue",
           "epilogue_text", "apply_epilogue", "seed_epilogue", "problems", "fold_batchnorm", "batchnorm_unfoldable_reason",
           "output_shape", "rewrite", "backend", "enable", "compile_reports", "autotune", "ProblemResult",
           "AutotuneError", "EPILOGUE_OPS", "DTYPES", "PRECISIONS", "PRECISION_BOUNDS", "HAS_CUSTOM_OP", "OP_NAME"]

OP_NAME = "deconvtune::conv_transpose2d_epilogue"
PRECISIONS = ("fp32", "tf32")
# The base of the library's bound for a verified kernel (max |err| vs float64 relative to
# max(1, |y|); codegen/problem.cpp's error_bound, which widens it for deep sums): what convert()'s
# check allows the converted model beyond the original's own error.
PRECISION_BOUNDS = {"fp32": 2e-6, "tf32": 1e-3}

# The epilogue ops the kernels implement (codegen/epilogue.cpp), each with its arity and the same
# function in PyTorch's ops: the CPU path, and the function whose gradient backward takes. gelu is
# the exact (erf) one and softplus has PyTorch's default beta=1, threshold=20, as in the kernels.
EPILOGUE_OPS = {
    "mish": (0, F.mish),
    "add": (1, lambda v, c: v + c),
    "mul": (1, lambda v, c: v * c),
    "hardtanh": (2, F.hardtanh),
    "relu": (0, F.relu),
    "leaky_relu": (1, F.leaky_relu),
    "gelu": (0, F.gelu),
    "silu": (0, F.silu),
    "sigmoid": (0, torch.sigmoid),
    "tanh": (0, torch.tanh),
    "softplus": (0, F.softplus),
    "clamp": (2, torch.clamp),
}
_FP32_MAX = 3.4028234663852886e38
_FP32_MIN_NORMAL = 1.1754943508222875e-38


def seed_epilogue(add_value=0.5, scale=2.0):
    """The seed Model's chain: Mish, + add_value, Hardtanh(-1, 1), * scale."""
    return f"mish,add:{float(add_value)!r},hardtanh:-1.0:1.0,mul:{float(scale)!r}"


def _epilogue_number(value, op_text):
    """An op's argument as the kernel takes it: finite, representable as an fp32 normal (or 0)."""
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number) or abs(number) > _FP32_MAX:
        raise ValueError(f"epilogue op {op_text!r}: argument {value!r} is not a finite number in the fp32 range")
    if number != 0.0 and abs(number) < _FP32_MIN_NORMAL:
        raise ValueError(f"epilogue op {op_text!r}: argument {value!r} is nonzero but below the fp32 normal range")
    return number


@functools.lru_cache(maxsize=1024)
def _parse_epilogue_cached(epilogue):
    if isinstance(epilogue, str):
        items = [item.strip() for item in epilogue.split(",")] if epilogue.strip() else []
    else:
        items = list(epilogue)
    ops = []
    for item in items:
        if isinstance(item, str):
            name, *args = [field.strip() for field in item.split(":")]
        elif isinstance(item, tuple) and item and isinstance(item[0], str):
            name, *args = item
        else:
            raise ValueError(f"epilogue: each op is a string such as 'add:0.5' or a tuple such as ('add', 0.5), "
                             f"got {item!r}")
        if name not in EPILOGUE_OPS:
            raise ValueError(f"epilogue op {item!r} is unknown (known ops: {', '.join(EPILOGUE_OPS)})")
        arity = EPILOGUE_OPS[name][0]
        if len(args) != arity:
            raise ValueError(f"epilogue op {item!r} takes {arity} argument(s), got {len(args)}")
        numbers = tuple(_epilogue_number(a, item) for a in args)
        if name in ("hardtanh", "clamp") and numbers[0] > numbers[1]:
            raise ValueError(f"epilogue op {item!r}: lower bound exceeds upper bound")
        ops.append((name,) + numbers)
    return tuple(ops)


def parse_epilogue(epilogue):
    """The canonical chain, a tuple of (name, *float args), of an epilogue written as the library's
    text ("mish,add:0.5,hardtanh:-1:1"), or a sequence of such op strings or (name, *args) tuples.
    None and "" are the empty chain. Refuses what the kernels refuse (codegen/epilogue.cpp's rules:
    the CPU path must not compute a chain the GPU would reject), naming the op."""
    if epilogue is None:
        return ()
    if not isinstance(epilogue, str):
        try:
            epilogue = tuple(tuple(op) if isinstance(op, list) else op for op in epilogue)
        except TypeError:
            raise ValueError(f"epilogue must be a string or a sequence of ops, got {epilogue!r}") from None
    try:
        return _parse_epilogue_cached(epilogue)
    except TypeError:  # an unhashable argument inside an op tuple
        raise ValueError(f"epilogue: op arguments must be numbers, got {epilogue!r}") from None


def epilogue_text(epilogue):
    """The library's text of a chain (any form parse_epilogue takes), each number as its shortest
    round-trip decimal, so the kernel receives exactly the argument."""
    return ",".join(":".join([op[0]] + [repr(a) for a in op[1:]]) for op in parse_epilogue(epilogue))


def apply_epilogue(v, epilogue):
    """The chain on tensor v with PyTorch's ops (out of place)."""
    for name, *args in parse_epilogue(epilogue):
        v = EPILOGUE_OPS[name][1](v, *args)
    return v


def _pair(value, name):
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) for v in value):
        return tuple(value)
    raise ValueError(f"deconvtune: {name} must be an int or a pair of ints, got {value!r}")


def _resolve_precision(precision):
    if precision is None:
        return "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"
    if precision not in PRECISIONS:
        raise ValueError(f"deconvtune: precision must be None, 'fp32' or 'tf32', got {precision!r}")
    return precision


def output_shape(spec):
    """[N, C_out, H_out, W_out] of a problem spec (a dict), by PyTorch's ConvTranspose2d formula."""
    try:
        k, s = _pair(spec["kernel_size"], "kernel_size"), _pair(spec.get("stride", 1), "stride")
        p, op = _pair(spec.get("padding", 0), "padding"), _pair(spec.get("output_padding", 0), "output_padding")
        d = _pair(spec.get("dilation", 1), "dilation")
        return [spec["batch"], spec["out_channels"]] + _output_size((spec["height"], spec["width"]), k, s, p, op, d)
    except (KeyError, TypeError, IndexError) as e:
        raise ValueError(f"deconvtune: problem {spec!r} lacks or mistypes a field ({e!r})") from None


def _output_size(size, kernel_size, stride, padding, output_padding, dilation):
    """[H_out, W_out] of ConvTranspose2d; plain arithmetic, so symbolic sizes (torch.compile's) pass."""
    return [(size[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (kernel_size[i] - 1) + output_padding[i] + 1
            for i in range(2)]


# The tensor dtypes the kernels take, by the problem's "dtype" names (torch's own).
DTYPES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


def _layout(x):
    """The problem's "layout" of a 4-D x: NCHW when contiguous (also where both forms hold, as for
    one channel), NHWC when channels_last, None when neither."""
    if x.is_contiguous():
        return "NCHW"
    if x.is_contiguous(memory_format=torch.channels_last):
        return "NHWC"
    return None


@functools.lru_cache(maxsize=1024)
def _problem(x_shape, weight_shape, has_bias, stride, padding, output_padding, groups, dilation, epilogue,
             precision, dtype="float32", layout="NCHW"):
    """The problem JSON (PyTorch's argument names) for these shapes and arguments; cached, as it is
    built on every CUDA call."""
    n, c_in, h, w = x_shape
    return json.dumps({
        "batch": n, "in_channels": c_in, "out_channels": weight_shape[1] * groups, "height": h, "width": w,
        "kernel_size": list(weight_shape[2:]), "stride": list(stride), "padding": list(padding),
        "output_padding": list(output_padding), "dilation": list(dilation), "groups": groups,
        "bias": has_bias, "epilogue": epilogue, "precision": precision, "dtype": dtype, "layout": layout})


def _check_inputs(x, weight, bias, groups):
    """Clear errors, on either device, for what ConvTranspose2d cannot take."""
    for name, t in (("x", x), ("weight", weight), ("bias", bias)):
        if t is None and name == "bias":
            continue
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"deconvtune: {name} must be a torch.Tensor, got {type(t).__name__}")
        if t.device != x.device:
            raise ValueError(f"deconvtune: {name} is on {t.device} but x is on {x.device}")
        if not t.is_floating_point():
            raise ValueError(f"deconvtune: {name} has dtype {t.dtype}; a floating-point tensor is needed")
    dtypes = [(name, t.dtype) for name, t in (("x", x), ("weight", weight), ("bias", bias)) if t is not None]
    if len({dtype for _, dtype in dtypes}) > 1:
        raise ValueError("deconvtune: mixed dtypes (" + ", ".join(f"{name} {dtype}" for name, dtype in dtypes)
                         + "); x, weight and bias must share one (cast them, or run under torch.autocast)")
    if x.dim() != 4:
        raise ValueError(f"deconvtune: x must be 4-D NCHW [N, C_in, H, W], got shape {list(x.shape)}")
    if weight.dim() != 4:
        raise ValueError(f"deconvtune: weight must be 4-D [C_in, C_out/groups, kH, kW], got shape "
                         f"{list(weight.shape)}")
    if weight.shape[0] != x.shape[1]:
        raise ValueError(f"deconvtune: x has {x.shape[1]} channels, the weight expects {weight.shape[0]} "
                         f"(its shape {list(weight.shape)} is [C_in, C_out/groups, kH, kW])")
    if weight.shape[0] % groups:
        raise ValueError(f"deconvtune: groups={groups} does not divide in_channels={weight.shape[0]}")
    if bias is not None and list(bias.shape) != [weight.shape[1] * groups]:
        raise ValueError(f"deconvtune: bias has shape {list(bias.shape)}, expected [{weight.shape[1] * groups}]")


def _check_native_inputs(x, weight, bias):
    """What the CUDA kernel needs beyond ConvTranspose2d's own rules (the dtypes agree already)."""
    if x.dtype not in DTYPES:
        raise ValueError(f"deconvtune: x has dtype {x.dtype}; on CUDA only torch.float32, torch.bfloat16 and "
                         "torch.float16 are supported (other dtypes run on the CPU path)")
    if _layout(x) is None:
        raise ValueError("deconvtune: x is neither contiguous (NCHW) nor channels_last; pass x.contiguous()")
    if bias is not None and not bias.is_contiguous():
        raise ValueError("deconvtune: bias is not contiguous; pass bias.contiguous()")


def _autocast(x, weight, bias):
    """x, weight and bias in torch.autocast's dtype where it is on for CUDA and x is a CUDA float
    tensor, as autocast casts conv_transpose2d's inputs (the custom op is not on its lists); else as
    they are. The casts are autograd's, so gradients reach float32 parameters."""
    if x.device.type != "cuda" or not x.is_floating_point() or not torch.is_autocast_enabled():
        return x, weight, bias
    get = getattr(torch, "get_autocast_dtype", None)
    dtype = get("cuda") if get is not None else torch.get_autocast_gpu_dtype()

    def cast(t):  # as autocast: float64 stays float64 (and the mix is then refused, naming it)
        return t.to(dtype) if isinstance(t, torch.Tensor) and t.dtype in DTYPES else t
    return cast(x), cast(weight), cast(bias)


_lock = threading.Lock()
_engines = {}  # (device index, db_path, on_miss) -> Engine
_plans = {}  # (device index, db_path, on_miss, problem JSON) -> Plan


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


def _reference(x, weight, bias, stride, padding, output_padding, groups, dilation, epilogue):
    """The block with PyTorch's ops: the CPU path, and what backward differentiates."""
    y = F.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation)
    return apply_epilogue(y, epilogue)


def _forward(x, weight, bias, stride, padding, output_padding, groups, dilation, epilogue, precision, db_path,
             on_miss):
    """y = epilogue(conv_transpose2d(x, weight, bias, ...)): deconvtune's kernel on CUDA, PyTorch's
    ops elsewhere. The arguments are canonical (pairs as tuples or lists, epilogue as its text)."""
    _check_inputs(x, weight, bias, groups)
    if x.device.type != "cuda":
        return _reference(x, weight, bias, stride, padding, output_padding, groups, dilation, epilogue)
    _check_native_inputs(x, weight, bias)
    layout = _layout(x)
    # The kernels read W as [C_in, C_out/groups, kH, kW] contiguous; model.to(memory_format=
    # torch.channels_last) makes it channels_last, and a copy of W is small beside x and y.
    weight = weight.contiguous()
    problem = _problem(tuple(x.shape), tuple(weight.shape), bias is not None, tuple(stride), tuple(padding),
                       tuple(output_padding), groups, tuple(dilation), epilogue, _resolve_precision(precision),
                       DTYPES[x.dtype], layout)
    plan = _plan(x.device.index, problem, db_path, on_miss)
    # A contiguous view may start anywhere in its allocation (a flat buffer's slices do); staged
    # kernels read x in 16-byte tensor map boxes, so such an x is copied to a fresh, aligned one.
    if x.data_ptr() % plan.x_alignment:
        x = x.clone(memory_format=_memory_format(layout))
    y = torch.empty(plan.output_shape, dtype=x.dtype, device=x.device, memory_format=_memory_format(layout))
    stream = torch.cuda.current_stream(x.device).cuda_stream
    plan.run(x.data_ptr(), weight.data_ptr(), 0 if bias is None else bias.data_ptr(), y.data_ptr(), stream)
    return y


def _memory_format(layout):
    return torch.channels_last if layout == "NHWC" else torch.contiguous_format


def _backward(grad_y, x, weight, bias, stride, padding, output_padding, groups, dilation, epilogue, needs):
    """(grad x, grad weight, grad bias), None where `needs` says not needed: the gradient of the
    epilogue chain times ConvTranspose2d's, both PyTorch's own (autograd through _reference), so the
    fused block trains exactly as the unfused one, kinks (hardtanh's, relu's) included.

    The pre-activation conv_transpose2d(x, W) + b is recomputed from the saved x and W, not saved:
    saving it would hold a y-sized tensor per block from forward to backward (the headline block's y
    is 4x x, and x and W are saved anyway), while recomputing costs one ConvTranspose2d in backward,
    beside the two (grad x, grad W) that backward runs anyway. (The chain's own intermediates live
    only during this backward.) On CUDA the recomputation is cuDNN's, in PyTorch's precision: its
    values may differ from the kernel's in the last bits, which moves a gradient only for an output
    within that distance of a kink."""
    with torch.enable_grad():
        inputs = [None if t is None else t.detach().requires_grad_(bool(need))
                  for t, need in zip((x, weight, bias), needs)]
        y = _reference(*inputs, stride, padding, output_padding, groups, dilation, epilogue)
        wanted = [t for t in inputs if t is not None and t.requires_grad]
        grads = iter(torch.autograd.grad(y, wanted, grad_y))
    return tuple(next(grads) if t is not None and t.requires_grad else None for t in inputs)


_N_OP_ARGUMENTS = 12  # x, weight, bias, stride, padding, output_padding, groups, dilation, epilogue, precision,
#                       db_path, on_miss


def _setup_context(ctx, inputs, output):
    x, weight, bias, stride, padding, output_padding, groups, dilation, epilogue = inputs[:9]
    ctx.save_for_backward(x, weight, bias)
    ctx.conv_arguments = (stride, padding, output_padding, groups, dilation, epilogue)


@torch.autograd.function.once_differentiable
def _backward_from_context(ctx, grad_y):
    x, weight, bias = ctx.saved_tensors
    grads = _backward(grad_y, x, weight, bias, *ctx.conv_arguments, ctx.needs_input_grad[:3])
    return grads + (None,) * (_N_OP_ARGUMENTS - 3)


if hasattr(torch, "library") and hasattr(torch.library, "custom_op"):
    # No device types given: one implementation for every device, which dispatches itself (CPU:
    # PyTorch's ops). The epilogue is its library text: custom-op schemas have no list of strings.
    @torch.library.custom_op(OP_NAME, mutates_args=())
    def _op(x: torch.Tensor, weight: torch.Tensor, bias: typing.Optional[torch.Tensor], stride: typing.List[int],
            padding: typing.List[int], output_padding: typing.List[int], groups: int, dilation: typing.List[int],
            epilogue: str, precision: typing.Optional[str], db_path: str, on_miss: str) -> torch.Tensor:
        return _forward(x, weight, bias, stride, padding, output_padding, groups, dilation, epilogue, precision,
                        db_path, on_miss)

    @_op.register_fake
    def _(x, weight, bias, stride, padding, output_padding, groups, dilation, epilogue, precision, db_path,
          on_miss):
        _check_inputs(x, weight, bias, groups)
        size = _output_size(x.shape[2:], weight.shape[2:], stride, padding, output_padding, dilation)
        layout = _layout(x) if x.device.type == "cuda" else "NCHW"
        return x.new_empty([x.shape[0], weight.shape[1] * groups] + size).contiguous(
            memory_format=_memory_format(layout))

    _op.register_autograd(_backward_from_context, setup_context=_setup_context)
    _apply = _op
    HAS_CUSTOM_OP = True
else:  # PyTorch < 2.4: eager only, the same forward and backward through an autograd.Function
    class _Function(torch.autograd.Function):
        @staticmethod
        def forward(ctx, *inputs):
            _setup_context(ctx, inputs, None)
            return _forward(*inputs)

        backward = staticmethod(_backward_from_context)

    _apply = _Function.apply
    HAS_CUSTOM_OP = False


def conv_transpose2d_epilogue(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                              *, epilogue=(), precision=None, db_path=None, on_miss="heuristic"):
    """epilogue(F.conv_transpose2d(x, weight, bias, stride, padding, output_padding, groups, dilation)),
    fused: deconvtune's kernel for CUDA float32, bfloat16 or float16 tensors, x contiguous or
    channels_last, y in x's dtype and memory format (planned by the engine of x's
    device for the tuning DB `db_path`, None: the default, and `on_miss`: 'heuristic', 'tune' or
    'fail'), PyTorch's ops on other devices. `epilogue`: any form parse_epilogue takes; `precision`:
    'fp32', 'tf32' or None (follow torch.backends.cudnn.allow_tf32). Differentiable in x, weight, bias.
    torch.fx records it as one call (a leaf), so traced models keep it whole."""
    if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
        raise ValueError(f"deconvtune: groups must be an int >= 1, got {groups!r}")
    if on_miss not in _native.ON_MISS:
        raise ValueError(f"deconvtune: on_miss must be one of {sorted(_native.ON_MISS)}, got {on_miss!r}")
    if precision is not None:
        _resolve_precision(precision)
    return _fused(x, weight, bias, list(_pair(stride, "stride")), list(_pair(padding, "padding")),
                  list(_pair(output_padding, "output_padding")), groups, list(_pair(dilation, "dilation")),
                  epilogue_text(epilogue), precision, db_path or "", on_miss)


def _is_compiling():
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return compiler.is_compiling()
    dynamo = getattr(torch, "_dynamo", None)
    return bool(dynamo is not None and getattr(dynamo, "is_compiling", lambda: False)())


_PLAIN_TENSOR_TYPES = (torch.Tensor, nn.Parameter)


def _needs_the_op(x, weight, bias):
    """Whether a call must go through the custom op (or autograd.Function): where autograd records
    it; where anything traces it (torch.compile, export, make_fx, AOT autograd: their graphs hold
    the op), seen as dynamo compiling, a tensor subclass (FakeTensor, FunctionalTensor) or a
    dispatch mode; under a functorch transform. Elsewhere (inference on plain tensors) _forward runs
    directly: the op's dispatch costs more host time per call (30-70 us on the H200's host,
    bench/results/2026-12-03-h200-decoders) than a small block's kernel."""
    tensors = [t for t in (x, weight, bias) if t is not None]
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return True
    if any(type(t) not in _PLAIN_TENSOR_TYPES for t in tensors) or _is_compiling():
        return True
    dispatch_modes = getattr(torch._C, "_len_torch_dispatch_stack", None)
    transforms_active = getattr(torch._C, "_are_functorch_transforms_active", None)
    return bool((dispatch_modes is not None and dispatch_modes() > 0) or
                (transforms_active is not None and transforms_active()))


def _fused(x, weight, bias, stride, padding, output_padding, groups, dilation, epilogue, precision, db_path,
           on_miss):
    """The op on arguments already checked and canonical (pairs as lists, the epilogue as its text):
    what the module's forward calls, with nothing torch.compile would have to trace through."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"deconvtune: x must be a torch.Tensor, got {type(x).__name__}")
    x, weight, bias = _autocast(x, weight, bias)
    call = _apply if _needs_the_op(x, weight, bias) else _forward
    return call(x, weight, bias, stride, padding, output_padding, groups, dilation, epilogue, precision, db_path,
                on_miss)


# torch.fx records calls of these as single nodes (leaves) rather than tracing into them.
torch.fx.wrap("conv_transpose2d_epilogue")
torch.fx.wrap("_fused")


class ConvTranspose2dEpilogue(nn.Module):
    """nn.ConvTranspose2d followed by an elementwise epilogue, as one fused kernel.

    Positional and keyword arguments as nn.ConvTranspose2d's (padding_mode: only 'zeros', the one
    PyTorch supports for transposed convolutions). Keyword only: epilogue (the chain, any form
    parse_epilogue takes, e.g. "mish,add:0.5,hardtanh:-1:1,mul:2"; default none), precision (None:
    follow torch.backends.cudnn.allow_tf32; or 'fp32' / 'tf32'), db_path (None: the default tuning
    DB), on_miss ('heuristic', 'tune' or 'fail').
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros", device=None, dtype=None, *, epilogue=(),
                 precision=None, db_path=None, on_miss="heuristic"):
        super().__init__()
        seed_hint = (" (the seed Model's add_value and scale are not constructor arguments: use "
                     "ConvTranspose2dEpilogue.from_model(model) or epilogue=seed_epilogue(add_value, scale))")
        if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
            raise ValueError(f"ConvTranspose2dEpilogue: groups must be an int >= 1, got {groups!r}{seed_hint}")
        if not isinstance(bias, bool):
            raise ValueError(f"ConvTranspose2dEpilogue: bias must be True or False, got {bias!r}{seed_hint}")
        if padding_mode != "zeros":
            raise ValueError(f"ConvTranspose2dEpilogue: padding_mode must be 'zeros', got {padding_mode!r}")
        if precision is not None:
            _resolve_precision(precision)
        if on_miss not in _native.ON_MISS:
            raise ValueError(f"ConvTranspose2dEpilogue: on_miss must be one of {sorted(_native.ON_MISS)}, got "
                             f"{on_miss!r}")
        self.conv_transpose = nn.ConvTranspose2d(in_channels, out_channels, kernel_size, stride, padding,
                                                 output_padding, groups, bias, dilation, padding_mode, device,
                                                 dtype)
        self.epilogue = epilogue_text(epilogue)
        self.precision = precision
        self.db_path = db_path
        self.on_miss = on_miss

    @classmethod
    def from_conv_transpose(cls, conv, epilogue=(), batchnorm=None, **kwargs):
        """The fused module of `conv` (an nn.ConvTranspose2d), optionally an eval-mode BatchNorm2d
        right after it folded into its weight and bias, then `epilogue`. Without batchnorm it shares
        conv's parameters; kwargs: precision, db_path, on_miss."""
        if not isinstance(conv, nn.ConvTranspose2d):
            raise TypeError(f"from_conv_transpose: conv must be an nn.ConvTranspose2d, got {type(conv).__name__}")
        module = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                     conv.output_padding, conv.groups, conv.bias is not None or batchnorm is not None,
                     conv.dilation, conv.padding_mode, device="meta", epilogue=epilogue, **kwargs)
        if batchnorm is None:
            module.conv_transpose.weight, module.conv_transpose.bias = conv.weight, conv.bias
        else:
            weight, bias = fold_batchnorm(conv.weight, conv.bias, conv.groups, batchnorm)
            module.conv_transpose.weight, module.conv_transpose.bias = nn.Parameter(weight), nn.Parameter(bias)
        module.train(conv.training)
        return module

    @classmethod
    def from_model(cls, model, **kwargs):
        """A module computing what `model` (the seed Model: conv_transpose, add_value, scale) computes,
        with a copy of its weights, on its device. kwargs: precision, db_path, on_miss."""
        conv = getattr(model, "conv_transpose", None)
        if not isinstance(conv, nn.ConvTranspose2d):
            raise TypeError(f"from_model expects the seed Model (a .conv_transpose nn.ConvTranspose2d, "
                            f".add_value and .scale); {type(model).__name__} has no ConvTranspose2d "
                            "'conv_transpose' (deconvtune.torch.convert takes any model)")
        for attribute in ("add_value", "scale"):
            if not isinstance(getattr(model, attribute, None), (int, float)):
                raise TypeError(f"from_model expects the seed Model; {type(model).__name__}.{attribute} "
                                "is missing or not a number")
        module = cls.from_conv_transpose(copy.deepcopy(conv), seed_epilogue(model.add_value, model.scale), **kwargs)
        module.train(model.training)
        return module

    def problem(self, x_shape, precision, dtype="float32", layout="NCHW"):
        """The problem JSON the library is asked for, for an input of `x_shape` in `precision`, of
        `dtype` ("float32", "bfloat16", "float16") and `layout` ("NCHW", or "NHWC": channels_last)."""
        if len(x_shape) != 4:
            raise ValueError(f"deconvtune: x must be 4-D NCHW [N, C_in, H, W], got shape {list(x_shape)}")
        conv = self.conv_transpose
        if x_shape[1] != conv.in_channels:
            raise ValueError(f"deconvtune: x has {x_shape[1]} channels, the module expects {conv.in_channels}")
        return _problem(tuple(int(s) for s in x_shape), tuple(conv.weight.shape), conv.bias is not None,
                        conv.stride, conv.padding, conv.output_padding, conv.groups, conv.dilation, self.epilogue,
                        _resolve_precision(precision), dtype, layout)

    def current_precision(self):
        """The precision forward runs in now ('fp32' or 'tf32')."""
        return _resolve_precision(self.precision)

    def plan(self, x):
        """The deconvtune Plan (config name, where it came from) that forward(x) runs on CUDA."""
        x, _, _ = _autocast(x, self.conv_transpose.weight, None)
        return _plan(x.device.index, self.problem(x.shape, self.current_precision(), DTYPES.get(x.dtype, "float32"),
                                                  _layout(x) or "NCHW"), self.db_path or "", self.on_miss)

    def forward(self, x):
        conv = self.conv_transpose  # its arguments were checked when it was made, the epilogue made canonical
        return _fused(x, conv.weight, conv.bias, list(conv.stride), list(conv.padding), list(conv.output_padding),
                      conv.groups, list(conv.dilation), self.epilogue, self.precision, self.db_path or "",
                      self.on_miss)

    def extra_repr(self):
        return f"epilogue={self.epilogue!r}, precision={self.precision or 'follows allow_tf32'}"


def problems(model, example_inputs, precision=None):
    """The problems (dicts with PyTorch's argument names, one per line of `deconvtune autotune
    --problems FILE`) that the ConvTranspose2dEpilogue modules of `model` (a converted one, say) meet
    on example_inputs (a tensor or a tuple of forward's arguments), in call order, each once.
    precision: the problems' (None: each module's own). Runs a copy of the model, without grad."""
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    if precision is not None:
        _resolve_precision(precision)
    found = []

    def record(module, inputs):
        x, _, _ = _autocast(inputs[0], module.conv_transpose.weight, None)
        spec = json.loads(module.problem(x.shape, precision or module.current_precision(),
                                         DTYPES.get(x.dtype, "float32"), _layout(x) or "NCHW"))
        if spec not in found:
            found.append(spec)

    model = copy.deepcopy(model)  # a training-mode BatchNorm would update its statistics
    for module in model.modules():
        if isinstance(module, ConvTranspose2dEpilogue):
            module.register_forward_pre_hook(record)
    with torch.no_grad():
        model(*example_inputs)
    return found


def fold_batchnorm(weight, bias, groups, batchnorm):
    """(weight, bias) of a ConvTranspose2d that computes batchnorm(conv_transpose2d(x, weight, bias)),
    for an eval-mode BatchNorm2d with running statistics (refused otherwise, saying why)."""
    if not isinstance(batchnorm, nn.BatchNorm2d):
        raise TypeError(f"fold_batchnorm: batchnorm must be an nn.BatchNorm2d, got {type(batchnorm).__name__}")
    reason = batchnorm_unfoldable_reason(batchnorm)
    if reason:
        raise ValueError(f"fold_batchnorm: {reason}")
    c_out = weight.shape[1] * groups
    if batchnorm.num_features != c_out:
        raise ValueError(f"fold_batchnorm: the BatchNorm2d has {batchnorm.num_features} features, the "
                         f"ConvTranspose2d {c_out} output channels")
    with torch.no_grad():
        return _fold(weight, bias, groups, batchnorm.running_mean, batchnorm.running_var, batchnorm.weight,
                     batchnorm.bias, batchnorm.eps)


def _fold(weight, bias, groups, running_mean, running_var, bn_weight, bn_bias, eps):
    """The folded (weight, bias) of ConvTranspose2d then an eval-mode batch norm with these tensors
    (bn_weight, bn_bias: None when not affine); differentiable, so torch.compile's graphs fold in
    forward and train the original parameters through it.

    In float64, then rounded once to the weight's dtype: the folded model's error is then that of
    one rounding of each weight, not of a chain of float32 operations."""
    c_in, c_out_per_group = weight.shape[:2]
    scale = torch.rsqrt(running_var.double() + eps)
    if bn_weight is not None:
        scale = scale * bn_weight.double()
    shift = -running_mean.double() * scale
    if bn_bias is not None:
        shift = shift + bn_bias.double()
    # weight is [C_in, C_out/groups, kH, kW]; output channel g * C_out/groups + j is group g's
    # column j, fed by that group's C_in/groups input channels.
    grouped = weight.double().reshape(groups, c_in // groups, c_out_per_group, weight.shape[2], weight.shape[3])
    folded = grouped * scale.reshape(groups, 1, c_out_per_group, 1, 1)
    folded_bias = shift if bias is None else bias.double() * scale + shift
    return folded.reshape(weight.shape).to(weight.dtype), folded_bias.to(weight.dtype)


def _graph_block(x, weight, bias, batchnorm, stride, padding, output_padding, groups, dilation, epilogue,
                 precision, db_path, on_miss):
    """One fused block as the torch.compile backend writes it into a captured graph: `batchnorm`
    None or (running_mean, running_var, weight, bias, eps) of an eval-mode batch norm, folded here,
    in the graph, from the graph's own tensors (so the model's parameters stay the ones trained and
    Inductor compiles the folding), then the fused op (the custom op on PyTorch >= 2.4)."""
    if batchnorm is not None:
        weight, bias = _fold(weight, bias, groups, *batchnorm)
    return _fused(x, weight, bias, list(stride), list(padding), list(output_padding), groups, list(dilation),
                  epilogue, precision, db_path, on_miss)


def batchnorm_unfoldable_reason(batchnorm):
    """Why `batchnorm` cannot be folded into the convolution before it ('' when it can)."""
    if batchnorm.training:
        return ("it is in training mode (it normalises by each batch's statistics and updates its running "
                "ones; call .eval() on the model before converting)")
    if batchnorm.running_mean is None or batchnorm.running_var is None:
        return "it has no running statistics (track_running_stats=False: it normalises by each batch's)"
    return ""


from ._convert import ConversionRecord, convert, rewrite  # noqa: E402  (they build on the module above)
from ._compile import backend, compile_reports, enable  # noqa: E402
from ._autotune import AutotuneError, ProblemResult, autotune  # noqa: E402
