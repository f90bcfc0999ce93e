"""deconvtune.torch.convert: an existing model's ConvTranspose2d blocks as fused deconvtune modules.

The model is traced with torch.fx. From every ConvTranspose2d (an nn.ConvTranspose2d module, or
F.conv_transpose2d with a module attribute as weight and constant arguments) the converter follows
the graph while each intermediate has exactly one user (otherwise the unfused value is needed
elsewhere) and the user is an op the epilogue implements on a constant: first an eval-mode
BatchNorm2d, folded into the weight and bias, then the chain. Each match becomes one
ConvTranspose2dEpilogue; every ConvTranspose2d gets a ConversionRecord saying what was fused, or
why not, and where its chain ends.
"""
import copy
import dataclasses
import inspect
import operator

import torch
import torch.fx
import torch.nn.functional as F
import torch.utils._pytree as pytree
from torch import nn

from . import torch as dtorch


@dataclasses.dataclass
class ConversionRecord:
    """One ConvTranspose2d of the model. name: its module path ('decoder.0'), or for a functional
    call its node in the traced graph and its weight ('conv_transpose2d (F.conv_transpose2d, weight
    w1)'). reason starts with 'fused' or 'not fused' ('kept unfused' after a failed check)."""
    name: str
    fused: bool
    reason: str  # why it was fused or not, and where the chain ends
    epilogue: str = ""  # the fused chain, in the library's text
    batchnorm: str = ""  # the folded BatchNorm2d's module path


class _NotEpilogue(Exception):
    """A node the chain cannot take; the message says why."""


def _describe(node, modules):
    if node.op == "call_module":
        return f"{node.target} ({type(modules[node.target]).__name__})"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if node.op == "call_function":
        target = node.target
        module = getattr(target, "__module__", None) or ""
        name = getattr(target, "__name__", repr(target))
        return f"operator.{name}" if module == "_operator" else (f"{module}.{name}" if module else name)
    return node.op


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _NotEpilogue(f"{what} is {value!r}, not a constant number")
    return float(value)


def _gelu(approximate):
    if approximate != "none":
        raise _NotEpilogue(f"gelu with approximate={approximate!r} (the epilogue's gelu is the exact, erf one)")
    return (("gelu",),)


def _softplus(beta, threshold):
    if beta != 1 or threshold != 20:
        raise _NotEpilogue(f"softplus with beta={beta!r}, threshold={threshold!r} (the epilogue's has 1 and 20)")
    return (("softplus",),)


def _hardtanh(min_val, max_val):
    return (("hardtanh", _number(min_val, "min_val"), _number(max_val, "max_val")),)


def _leaky_relu(negative_slope):
    return (("leaky_relu", _number(negative_slope, "negative_slope")),)


def _clamp(x, input, min=None, max=None):  # noqa: A002  (torch.clamp's own names)
    if min is None or max is None:
        raise _NotEpilogue("clamp with one bound (the epilogue's clamp:lo:hi takes both)")
    return (("clamp", _number(min, "clamp's min"), _number(max, "clamp's max")),)


def _add(x, a, b, alpha=1):
    if alpha != 1:
        raise _NotEpilogue(f"add with alpha={alpha!r}")
    return (("add", _number(b if a is x else a, "the other operand")),)


def _mul(x, a, b):
    return (("mul", _number(b if a is x else a, "the other operand")),)


def _sub(x, a, b, alpha=1):
    if alpha != 1:
        raise _NotEpilogue(f"sub with alpha={alpha!r}")
    if a is x:  # x - c is x + (-c) exactly: negation is exact
        return (("add", -_number(b, "the subtrahend")),)
    return (("mul", -1.0), ("add", _number(a, "the minuend")))  # c - x, exactly c + (-x)


def _div(x, *args, **kwargs):
    raise _NotEpilogue("division (the epilogue has mul, and x * (1/c) rounds differently from x / c)")


def _unary(name):
    return lambda x, input, inplace=False: ((name,),)


# What each form of an op contributes to the chain (a tuple of op tuples). Module handlers take the
# module; function and method handlers take the chain's tensor (the node x, to tell which operand of
# a binary op it is) and then the node's arguments as the function or method does.
_MODULE_OPS = {
    nn.Mish: lambda m: (("mish",),),
    nn.ReLU: lambda m: (("relu",),),
    nn.ReLU6: lambda m: _hardtanh(0.0, 6.0),
    nn.LeakyReLU: lambda m: _leaky_relu(m.negative_slope),
    nn.GELU: lambda m: _gelu(getattr(m, "approximate", "none")),
    nn.SiLU: lambda m: (("silu",),),
    nn.Sigmoid: lambda m: (("sigmoid",),),
    nn.Tanh: lambda m: (("tanh",),),
    nn.Softplus: lambda m: _softplus(m.beta, m.threshold),
    nn.Hardtanh: lambda m: _hardtanh(m.min_val, m.max_val),
    nn.Identity: lambda m: (),
}
_FUNCTION_OPS = {
    F.mish: _unary("mish"), F.relu: _unary("relu"), torch.relu: _unary("relu"), F.silu: _unary("silu"),
    torch.sigmoid: _unary("sigmoid"), torch.tanh: _unary("tanh"),
    F.gelu: lambda x, input, approximate="none": _gelu(approximate),
    F.softplus: lambda x, input, beta=1, threshold=20: _softplus(beta, threshold),
    F.leaky_relu: lambda x, input, negative_slope=0.01, inplace=False: _leaky_relu(negative_slope),
    F.hardtanh: lambda x, input, min_val=-1.0, max_val=1.0, inplace=False: _hardtanh(min_val, max_val),
    F.relu6: lambda x, input, inplace=False: _hardtanh(0.0, 6.0),
    torch.clamp: _clamp, torch.clip: _clamp,
    operator.add: _add, torch.add: _add, operator.iadd: _add,
    operator.mul: _mul, torch.mul: _mul, operator.imul: _mul,
    operator.sub: _sub, torch.sub: _sub, operator.isub: _sub,
    operator.truediv: _div, torch.div: _div,
}
# Tensor methods; the in-place ones too: the chain only takes an intermediate's one user, so
# nothing else sees the tensor they modify.
_METHOD_OPS = {}
for _name, _handler in (("relu", _unary("relu")), ("sigmoid", _unary("sigmoid")), ("tanh", _unary("tanh")),
                        ("clamp", _clamp), ("clip", _clamp), ("add", _add), ("mul", _mul), ("sub", _sub),
                        ("div", _div)):
    _METHOD_OPS[_name] = _METHOD_OPS[_name + "_"] = _handler


def _epilogue_ops(node, x, modules):
    """The chain ops `node` applies to `x` (its one tensor operand), or _NotEpilogue saying why not."""
    if node.op == "call_module":
        handler = _MODULE_OPS.get(type(modules[node.target]))
        call = handler and (lambda: handler(modules[node.target]))
    else:
        handler = {"call_function": _FUNCTION_OPS, "call_method": _METHOD_OPS}.get(node.op, {}).get(node.target)
        call = handler and (lambda: handler(x, *node.args, **node.kwargs))
    if call is None:
        raise _NotEpilogue("")
    operands = []
    pytree.tree_map(lambda a: operands.append(a) if isinstance(a, torch.fx.Node) else None,
                    (node.args, node.kwargs))
    if len(operands) != 1:
        others = [a.name for a in operands if a is not x] or [x.name]
        raise _NotEpilogue(f"it takes a second tensor ({', '.join(others)}), the epilogue only constants")
    try:
        ops = call()
    except TypeError as e:  # arguments the handler does not take (an out=, say)
        raise _NotEpilogue(f"its arguments ({e})") from None
    try:
        dtorch.parse_epilogue(ops)  # the kernel's own rules for the arguments (fp32 range, lo <= hi)
    except ValueError as e:
        raise _NotEpilogue(str(e)) from None
    return ops


_CONV_TRANSPOSE2D_SIGNATURE = inspect.signature(
    lambda input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1: None)


@dataclasses.dataclass
class _Match:
    record: ConversionRecord
    nodes: list  # the conv node, the BatchNorm's, then the chain's, in graph order
    conv: nn.ConvTranspose2d  # the convolution (for a functional call, one holding its weight)
    batchnorm: nn.BatchNorm2d = None
    epilogue: tuple = ()


def _fetch(root, target):
    value = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _functional_conv(node, gm):
    """An nn.ConvTranspose2d sharing a functional call's weight and bias, or a string saying why not."""
    try:
        bound = _CONV_TRANSPOSE2D_SIGNATURE.bind(*node.args, **node.kwargs).arguments
    except TypeError as e:
        return f"its arguments do not bind to F.conv_transpose2d's ({e})"
    weight, bias = bound["weight"], bound.get("bias")
    constant = [k for k in ("stride", "padding", "output_padding", "groups", "dilation") if k in bound]
    if any(isinstance(bound[k], torch.fx.Node) for k in constant):
        return "its stride, padding, output_padding, groups or dilation is computed in forward, not a constant"
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and not (isinstance(value, torch.fx.Node) and value.op == "get_attr"):
            return f"its {name} is computed in forward, not a module attribute"
    tensors = {name: None if value is None else _fetch(gm, value.target)
               for name, value in (("weight", weight), ("bias", bias))}
    w = tensors["weight"]
    if not isinstance(w, torch.Tensor) or w.dim() != 4:
        return "its weight is not a 4-D tensor"
    try:
        groups = bound.get("groups", 1)
        pairs = {k: dtorch._pair(bound.get(k, default), k)
                 for k, default in (("stride", 1), ("padding", 0), ("output_padding", 0), ("dilation", 1))}
        conv = nn.ConvTranspose2d(w.shape[0], w.shape[1] * groups, tuple(w.shape[2:]), groups=groups,
                                  bias=tensors["bias"] is not None, device="meta", **pairs)
    except (ValueError, TypeError) as e:
        return f"its arguments are not a ConvTranspose2d's ({e})"
    for name, tensor in tensors.items():
        if tensor is not None:
            setattr(conv, name, tensor if isinstance(tensor, nn.Parameter)
                    else nn.Parameter(tensor, requires_grad=tensor.requires_grad))
    return conv


def _unfused(name, node, why):
    return _Match(ConversionRecord(name, False, f"not fused: {why}"), [node], None)


def _match(node, gm, modules):
    """The _Match of a ConvTranspose2d node (fused or not: its record says), or None for other nodes."""
    if node.op == "call_module" and type(modules[node.target]) is nn.ConvTranspose2d:
        conv, name = modules[node.target], node.target
        if len(node.args) != 1 or node.kwargs:
            return _unfused(name, node, "it is called with output_size (a shape chosen per call)")
    elif node.op == "call_function" and node.target is torch.conv_transpose2d:
        weight = node.kwargs.get("weight", node.args[1] if len(node.args) > 1 else None)
        name = f"{node.name} (F.conv_transpose2d, weight {getattr(weight, 'target', weight)})"
        conv = _functional_conv(node, gm)
        if isinstance(conv, str):
            return _unfused(name, node, conv)
    else:
        return None
    if conv.weight.device.type == "cuda" and conv.weight.dtype != torch.float32:
        return _unfused(name, node, f"its weight is {conv.weight.dtype} on CUDA, where the kernels take "
                                    "torch.float32")
    match = _Match(ConversionRecord(name, False, ""), [node], conv)
    record, x = match.record, node
    users = list(x.users)
    if len(users) == 1 and users[0].op == "call_module" and type(modules[users[0].target]) is nn.BatchNorm2d:
        bn_node = users[0]
        reason = dtorch.batchnorm_unfoldable_reason(modules[bn_node.target])
        if reason:
            record.reason = f"not fused: BatchNorm2d '{bn_node.target}' right after it cannot be folded: {reason}"
            return match
        match.batchnorm, record.batchnorm = modules[bn_node.target], bn_node.target
        match.nodes.append(bn_node)
        x = bn_node
    chain_end = ""
    while not chain_end:
        users = list(x.users)
        if len(users) != 1:
            count = "twice" if len(users) == 2 else f"{len(users)} times"
            chain_end = (f"the output of {x.name} is used {count} ({', '.join(u.name for u in users)})"
                         if users else f"the output of {x.name} is unused")
        elif users[0].op == "output":
            chain_end = "the chain reaches forward's output"
        else:
            try:
                ops = _epilogue_ops(users[0], x, modules)
            except _NotEpilogue as e:
                chain_end = f"op {_describe(users[0], modules)} is not supported by the epilogue" + (
                    f": {e}" if str(e) else "")
            else:
                match.epilogue += ops
                match.nodes.append(users[0])
                x = users[0]
    if match.batchnorm is None and not match.epilogue:
        record.reason = f"not fused: nothing to fuse after it: {chain_end}"
    else:
        record.fused, record.epilogue = True, dtorch.epilogue_text(match.epilogue)
        record.reason = f"fused; the chain stops: {chain_end}"
    return match


def _replace(gm, match, precision, conv_targets):
    """Swaps the match's nodes for one call of its fused module."""
    graph, conv_node, last = gm.graph, match.nodes[0], match.nodes[-1]
    fused = dtorch.ConvTranspose2dEpilogue.from_conv_transpose(match.conv, match.epilogue, match.batchnorm,
                                                               precision=precision)
    if conv_node.op == "call_module" and conv_targets.count(conv_node.target) == 1:
        name = conv_node.target  # in place: the fused module keeps the convolution's path
    else:  # a module called more than once (its other calls keep it), or a functional call
        name = "deconvtune_" + conv_node.name
        while any(n == name for n, _ in gm.named_modules()):
            name += "_"
    gm.add_submodule(name, fused)
    with graph.inserting_after(last):
        call = graph.call_module(name, (conv_node.args[0] if conv_node.args else conv_node.kwargs["input"],))
    last.replace_all_uses_with(call)
    attributes = [a for a in conv_node.all_input_nodes if a.op == "get_attr"]
    for node in reversed(match.nodes):
        graph.erase_node(node)
    for attribute in attributes:  # a functional call's weight and bias, now held by the fused module
        if not attribute.users:
            target = attribute.target
            graph.erase_node(attribute)
            owner, _, leaf = target.rpartition(".")
            # Dropped from its owner unless the graph still reads it, or calls the owner (whose
            # own forward may use it).
            if not any((n.op == "get_attr" and n.target == target) or (n.op == "call_module" and owner and (
                    f"{n.target}.".startswith(f"{owner}.") or f"{owner}.".startswith(f"{n.target}.")))
                    for n in graph.nodes):
                delattr(_fetch(gm, owner) if owner else gm, leaf)


def _as_double(value):
    return value.double() if isinstance(value, torch.Tensor) and value.is_floating_point() else value


def _reference(model, example_inputs):
    """(the exact outputs, a float64 copy's, flattened; their structure; the original's own) of
    model on example_inputs. Runs copies: a training-mode BatchNorm updates its statistics."""
    with torch.no_grad():
        exact, spec = pytree.tree_flatten(copy.deepcopy(model).double()(*pytree.tree_map(_as_double,
                                                                                           example_inputs)))
        original = pytree.tree_flatten(copy.deepcopy(model)(*example_inputs))[0]
    return exact, spec, original


def _check(reference, converted, example_inputs, precision):
    """'' when `converted` is within the precision's bound of the exact result (`reference`, from
    _reference) on example_inputs, beyond the original model's own error there; else why not."""
    bound = dtorch.PRECISION_BOUNDS[dtorch._resolve_precision(precision)]
    exact, spec, original = reference
    with torch.no_grad():
        result, result_spec = pytree.tree_flatten(copy.deepcopy(converted)(*example_inputs))
    if result_spec != spec:
        return f"the converted model's outputs are structured as {result_spec}, the original's as {spec}"
    for i, (e, o, r) in enumerate(zip(exact, original, result)):
        if not isinstance(e, torch.Tensor):
            if e != r:
                return f"output {i} is {r!r}, the original's {e!r}"
            continue
        if r.shape != e.shape:
            return f"output {i} has shape {list(r.shape)}, the original's {list(e.shape)}"
        scale = max(1.0, e.abs().max().item()) if e.numel() else 1.0
        own = (o.double() - e).abs().max().item() if e.numel() else 0.0
        error = (r.double() - e).abs().max().item() if e.numel() else 0.0
        allowed = own + bound * scale
        if not error <= allowed:  # NaN fails too
            return (f"on example_inputs output {i}'s max |err| vs float64 is {error:.3g}, over the bound {allowed:.3g}"
                    f" (the original model's own {own:.3g} + {bound:g} x {scale:.3g})")
    return ""


def _build(model, precision, unfused=frozenset()):
    """(the converted copy of model, its records): every fusable match fused except those whose
    index (in graph order) is in `unfused`, whose records still say fused (convert rewrites them)."""
    try:
        gm = torch.fx.symbolic_trace(copy.deepcopy(model))
    except Exception as e:  # fx raises many types (TraceError, TypeError, ...) for untraceable code
        raise TypeError(f"convert: torch.fx cannot trace {type(model).__name__} ({type(e).__name__}: {e}); "
                        "data-dependent control flow in forward must move into a submodule") from e
    modules = dict(gm.named_modules())
    matches = [m for m in (_match(node, gm, modules) for node in list(gm.graph.nodes)) if m is not None]
    # Every call of a ConvTranspose2d module is matched: a module called more than once is here as often.
    conv_targets = [m.nodes[0].target for m in matches if m.nodes[0].op == "call_module"]
    for i, match in enumerate(matches):
        if match.record.fused and i not in unfused:
            _replace(gm, match, precision, conv_targets)
    gm.delete_all_unused_submodules()
    gm.graph.lint()
    gm.recompile()
    return gm, [m.record for m in matches]


def convert(model, example_inputs=None, precision=None, report=False):
    """A new module computing what `model` does, each ConvTranspose2d with the BatchNorm2d and
    elementwise ops after it fused into one ConvTranspose2dEpilogue; `model` is left untouched. It
    is a torch.fx.GraphModule: forward and the submodules it uses, not model's other methods.

    example_inputs (a tensor or a tuple of forward's arguments): when given, the converted model is
    checked against the original on them, within `precision`'s bound beyond the original's own
    error vs float64. On a mismatch each fused block is checked alone, and the ones that fail stay
    unfused; if the rest still fails together, every block stays unfused (the report says why).
    precision: the fused modules' ('fp32', 'tf32'; None: follow torch.backends.cudnn.allow_tf32).
    report: also return a list of ConversionRecord, one per ConvTranspose2d, in graph order.
    Raises TypeError for a model torch.fx cannot trace (the message says where it stopped)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"convert: model must be a torch.nn.Module, got {type(model).__name__}")
    if precision is not None:
        dtorch._resolve_precision(precision)
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    elif example_inputs is not None and not isinstance(example_inputs, (tuple, list)):
        raise TypeError(f"convert: example_inputs must be a tensor or a tuple of forward's arguments, got "
                        f"{type(example_inputs).__name__}")
    converted, records = _build(model, precision)
    fused = {i for i, r in enumerate(records) if r.fused}
    if not (example_inputs and fused):
        return (converted, records) if report else converted
    example_inputs = tuple(example_inputs)
    reference = _reference(model, example_inputs)
    mismatch = _check(reference, converted, example_inputs, precision)
    if mismatch:
        failing = {}
        for i in sorted(fused):
            alone = _check(reference, _build(model, precision, fused - {i})[0], example_inputs, precision)
            if alone:
                failing[i] = f"kept unfused: with only this block fused, {alone}"
        converted, records = _build(model, precision, set(failing))
        together = _check(reference, converted, example_inputs, precision) if fused - set(failing) else ""
        if together:  # each of the rest passes alone, not all of them at once
            failing = {i: f"kept unfused: with every block fused, {mismatch}" for i in fused}
            converted, records = _build(model, precision, fused)
        for i, why in failing.items():
            records[i].fused, records[i].reason = False, why
    return (converted, records) if report else converted
