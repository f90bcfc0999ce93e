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
import functools
import inspect
import operator
import os
import statistics

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
    w1)'). reason starts with 'fused' or 'not fused' ('kept unfused' after a failed check, or where
    the fused block was not faster on CUDA example inputs: then, as for a timed block kept fused,
    it gives both times)."""
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
# The builtins the functional forms call, and in-place ones: what a graph torch.compile captured
# may hold instead (the chain only takes an intermediate's one user, so nothing else sees a tensor
# an in-place op modifies).
_nn = torch._C._nn
_FUNCTION_OPS.update({
    _nn.mish: _unary("mish"), _nn.mish_: _unary("mish"), _nn.silu: _unary("silu"), _nn.silu_: _unary("silu"),
    torch.relu_: _unary("relu"), torch.sigmoid_: _unary("sigmoid"), torch.tanh_: _unary("tanh"),
    _nn.gelu: _FUNCTION_OPS[F.gelu], _nn.softplus: _FUNCTION_OPS[F.softplus],
    _nn.leaky_relu: lambda x, input, negative_slope=0.01: _leaky_relu(negative_slope),
    _nn.leaky_relu_: lambda x, input, negative_slope=0.01: _leaky_relu(negative_slope),
    _nn.hardtanh: lambda x, input, min_val=-1.0, max_val=1.0: _hardtanh(min_val, max_val),
    _nn.hardtanh_: lambda x, input, min_val=-1.0, max_val=1.0: _hardtanh(min_val, max_val),
    torch.clamp_: _clamp, torch.clip_: _clamp,
})
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
# F.batch_norm's and torch.batch_norm's (what a torch.compile graph holds for an inlined BatchNorm2d).
_BATCH_NORM_SIGNATURES = {
    F.batch_norm: inspect.signature(lambda input, running_mean, running_var, weight=None, bias=None, training=False,
                                    momentum=0.1, eps=1e-5: None),
    torch.batch_norm: inspect.signature(lambda input, weight, bias, running_mean, running_var, training, momentum,
                                        eps, cudnn_enabled: None),
}


@dataclasses.dataclass
class _Match:
    record: ConversionRecord
    nodes: list  # the conv node, the BatchNorm's, then the chain's, in graph order
    conv: nn.ConvTranspose2d  # the convolution (for a functional call, one holding its weight; None
    #                           when its weight is a graph input, which only rewrite() takes)
    call: dict = None  # the conv's input, weight and bias nodes (None for a module's) and arguments
    batchnorm: nn.BatchNorm2d = None  # the BatchNorm2d to fold, as a module (convert() folds it)
    batchnorm_call: tuple = None  # ... as graph values: (running_mean, running_var, weight, bias, eps)
    epilogue: tuple = ()


def _fetch(root, target):
    value = root
    for part in target.split("."):
        value = getattr(value, part)
    return value


def _value(node, gm):
    """The tensor (or fake tensor) a node stands for where the graph knows it: a get_attr's, or
    the example value torch.compile's graphs record; None otherwise."""
    if not isinstance(node, torch.fx.Node):
        return None
    if node.op == "get_attr":
        return _fetch(gm, node.target)
    value = node.meta.get("example_value", node.meta.get("val"))
    return value if isinstance(value, torch.Tensor) else None


def _functional_conv(node, gm, graph_inputs):
    """(an nn.ConvTranspose2d sharing a functional call's weight and bias, or None where they are
    not module attributes and graph_inputs allows that; the call's arguments), or a string saying
    why the call cannot be fused."""
    try:
        bound = _CONV_TRANSPOSE2D_SIGNATURE.bind(*node.args, **node.kwargs).arguments
    except TypeError as e:
        return f"its arguments do not bind to F.conv_transpose2d's ({e})"
    weight, bias = bound["weight"], bound.get("bias")
    constant = [k for k in ("stride", "padding", "output_padding", "groups", "dilation") if k in bound]
    if any(isinstance(bound[k], torch.fx.Node) for k in constant):
        return "its stride, padding, output_padding, groups or dilation is computed in forward, not a constant"
    attributes = True
    for name, value in (("weight", weight), ("bias", bias)):
        if value is not None and not (isinstance(value, torch.fx.Node) and value.op == "get_attr"):
            if not (graph_inputs and isinstance(value, torch.fx.Node)):
                return f"its {name} is computed in forward, not a module attribute"
            attributes = False
    groups = bound.get("groups", 1)
    try:
        pairs = {k: dtorch._pair(bound.get(k, default), k)
                 for k, default in (("stride", 1), ("padding", 0), ("output_padding", 0), ("dilation", 1))}
        if not isinstance(groups, int) or isinstance(groups, bool) or groups < 1:
            raise ValueError(f"groups={groups!r}")
    except ValueError as e:
        return f"its arguments are not a ConvTranspose2d's ({e})"
    call = dict(input=bound["input"], weight=weight, bias=bias, groups=groups, **pairs)
    w = _value(weight, gm)
    if w is not None and (not isinstance(w, torch.Tensor) or w.dim() != 4):
        return "its weight is not a 4-D tensor"
    if not attributes:
        return None, call
    tensors = {"weight": w, "bias": None if bias is None else _fetch(gm, bias.target)}
    try:
        conv = nn.ConvTranspose2d(w.shape[0], w.shape[1] * groups, tuple(w.shape[2:]), groups=groups,
                                  bias=tensors["bias"] is not None, device="meta", **pairs)
    except (ValueError, TypeError) as e:
        return f"its arguments are not a ConvTranspose2d's ({e})"
    for name, tensor in tensors.items():
        if tensor is not None:
            setattr(conv, name, tensor if isinstance(tensor, nn.Parameter)
                    else nn.Parameter(tensor, requires_grad=tensor.requires_grad))
    return conv, call


def _unfused(name, node, why):
    return _Match(ConversionRecord(name, False, f"not fused: {why}"), [node], None)


def _batchnorm(node, x, gm, modules, graph_inputs):
    """(what the batch norm `node` is: its name, the module to fold or None, its graph values or
    None) if `node` is a batch norm of x, with a reason string ('' when it can be folded); None
    when it is no batch norm."""
    if node.op == "call_module" and type(modules[node.target]) is nn.BatchNorm2d:
        module = modules[node.target]
        return (node.target, module, None), dtorch.batchnorm_unfoldable_reason(module)
    signature = _BATCH_NORM_SIGNATURES.get(node.target) if node.op == "call_function" else None
    if signature is None:
        return None
    try:
        bound = signature.bind(*node.args, **node.kwargs).arguments
    except TypeError:
        return None
    name = f"{node.name} ({_describe(node, modules)})"
    tensors = [bound.get(k) for k in ("running_mean", "running_var", "weight", "bias")]
    if bound["input"] is not x or any(t is x for t in tensors):
        return None
    if bound.get("training", False) is not False:
        return (name, None, None), ("it is in training mode (training=True: it normalises by each batch's "
                                    "statistics; call .eval() on the model before converting)")
    if tensors[0] is None or tensors[1] is None:
        return (name, None, None), "it has no running statistics (it normalises by each batch's)"
    eps = bound.get("eps", 1e-5)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        return (name, None, None), f"its eps is {eps!r}, not a constant number"
    if any(t is not None and not isinstance(t, torch.fx.Node) for t in tensors):
        return (name, None, None), "its statistics or affine parameters are not tensors of the graph"
    if graph_inputs:
        return (name, None, tuple(tensors) + (float(eps),)), ""
    if any(t is not None and t.op != "get_attr" for t in tensors):
        return (name, None, None), "its statistics or affine parameters are computed in forward, not module attributes"
    mean, var, weight, bias = (None if t is None else _fetch(gm, t.target) for t in tensors)
    module = nn.BatchNorm2d(mean.shape[0], eps=float(eps), affine=False, device="meta").eval()
    module.running_mean, module.running_var = mean, var
    module.weight = None if weight is None else nn.Parameter(weight, requires_grad=False)
    module.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
    return (name, module, None), ""


def _match(node, gm, modules, graph_inputs=False):
    """The _Match of a ConvTranspose2d node (fused or not: its record says), or None for other nodes.
    graph_inputs: take weights, biases and batch-norm tensors that are graph inputs (rewrite()'s
    graphs) rather than only module attributes (convert()'s fused modules hold them)."""
    if node.op == "call_module" and type(modules[node.target]) is nn.ConvTranspose2d:
        conv, name = modules[node.target], node.target
        if len(node.args) != 1 or node.kwargs:
            return _unfused(name, node, "it is called with output_size (a shape chosen per call)")
        call = dict(input=node.args[0], weight=None, bias=None, stride=conv.stride, padding=conv.padding,
                    output_padding=conv.output_padding, groups=conv.groups, dilation=conv.dilation)
        weight = conv.weight
    elif node.op == "call_function" and node.target is torch.conv_transpose2d:
        w_node = node.kwargs.get("weight", node.args[1] if len(node.args) > 1 else None)
        name = f"{node.name} (F.conv_transpose2d, weight {getattr(w_node, 'target', w_node)})"
        found = _functional_conv(node, gm, graph_inputs)
        if isinstance(found, str):
            return _unfused(name, node, found)
        conv, call = found
        weight = _value(call["weight"], gm)
    else:
        return None
    for what, tensor in (("weight", weight), ("input", _value(call["input"], gm))):
        if tensor is not None and tensor.device.type == "cuda" and tensor.dtype not in dtorch.DTYPES:
            return _unfused(name, node, f"its {what} is {tensor.dtype} on CUDA, where the kernels take "
                            + ", ".join(str(dtype) for dtype in dtorch.DTYPES))
    match = _Match(ConversionRecord(name, False, ""), [node], conv, call)
    record, x = match.record, node
    users = list(x.users)
    found = _batchnorm(users[0], x, gm, modules, graph_inputs) if len(users) == 1 else None
    if found is not None:
        (bn_name, module, values), reason = found
        if reason:
            record.reason = f"not fused: BatchNorm2d '{bn_name}' right after it cannot be folded: {reason}"
            return match
        match.batchnorm, match.batchnorm_call, record.batchnorm = module, values, bn_name
        match.nodes.append(users[0])
        x = users[0]
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
    if not record.batchnorm and not match.epilogue:
        record.reason = f"not fused: nothing to fuse after it: {chain_end}"
    else:
        record.fused, record.epilogue = True, dtorch.epilogue_text(match.epilogue)
        record.reason = f"fused; the chain stops: {chain_end}"
    return match


def _matches(gm, graph_inputs=False):
    """Every ConvTranspose2d of gm's graph as a _Match, in graph order."""
    modules = dict(gm.named_modules())
    return [m for m in (_match(node, gm, modules, graph_inputs) for node in list(gm.graph.nodes)) if m is not None]


def _replace(gm, match, options, conv_targets, replaced):
    """Swaps the match's nodes for one call of its fused module (built with `options`, its keyword
    arguments: precision, db_path). replaced: each earlier match's last node -> its replacement
    (the match's stored nodes may be one), updated here."""
    graph, conv_node, last = gm.graph, match.nodes[0], match.nodes[-1]
    fused = dtorch.ConvTranspose2dEpilogue.from_conv_transpose(match.conv, match.epilogue, match.batchnorm,
                                                               **options)
    if conv_node.op == "call_module" and conv_targets.count(conv_node.target) == 1:
        name = conv_node.target  # in place: the fused module keeps the convolution's path
    else:  # a module called more than once (its other calls keep it), or a functional call
        name = "deconvtune_" + conv_node.name
        while any(n == name for n, _ in gm.named_modules()):
            name += "_"
    gm.add_submodule(name, fused)
    with graph.inserting_after(last):
        call = graph.call_module(name, (replaced.get(match.call["input"], match.call["input"]),))
    last.replace_all_uses_with(call)
    replaced[last] = call
    attributes = [a for n in match.nodes for a in n.all_input_nodes if a.op == "get_attr"]
    for node in reversed(match.nodes):
        graph.erase_node(node)
    for attribute in dict.fromkeys(attributes):  # the weight, bias and batch-norm tensors now folded
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


def _rewrite_in_graph(gm, match, precision, db_path, on_miss, replaced):
    """Swaps the match's nodes for one call of torch._graph_block on the graph's own tensors: the
    weight, bias and batch-norm tensors stay what they are (graph inputs, or attributes read with
    get_attr), folded in the graph at run time, so training updates the model's own parameters."""
    graph, conv_node, last = gm.graph, match.nodes[0], match.nodes[-1]
    current = functools.partial(torch.fx.node.map_arg, fn=lambda n: replaced.get(n, n))
    call, batchnorm = current(match.call), current(match.batchnorm_call)
    with graph.inserting_before(last):
        def attribute(owner, leaf):
            return None if getattr(_fetch(gm, owner), leaf) is None else graph.get_attr(f"{owner}.{leaf}")
        weight, bias = call["weight"], call["bias"]
        if conv_node.op == "call_module":
            weight, bias = attribute(conv_node.target, "weight"), attribute(conv_node.target, "bias")
        if match.batchnorm is not None:  # a BatchNorm2d module
            bn_node = match.nodes[1]
            batchnorm = tuple(attribute(bn_node.target, leaf) for leaf in ("running_mean", "running_var", "weight",
                                                                            "bias")) + (match.batchnorm.eps,)
        block = graph.call_function(dtorch._graph_block, (
            call["input"], weight, bias, batchnorm, list(call["stride"]), list(call["padding"]),
            list(call["output_padding"]), call["groups"], list(call["dilation"]), match.record.epilogue, precision,
            db_path, on_miss))
    block.meta.update({k: v for k, v in last.meta.items() if k in ("example_value", "val", "tensor_meta")})
    last.replace_all_uses_with(block)
    replaced[last] = block
    for node in reversed(match.nodes):
        graph.erase_node(node)


def rewrite(gm, precision=None, report=False, db_path=None, on_miss="heuristic"):
    """Rewrites, in place, each ConvTranspose2d of a torch.fx.GraphModule's graph with the eval-mode
    batch norm and elementwise chain after it (what convert() fuses, found by the same matcher) to
    one fused call; returns gm (and, with report=True, one ConversionRecord per ConvTranspose2d).

    This is the torch.compile backend's pass (deconvtune.torch.backend), a plain function: it takes
    a graph torch.compile captured (weights and batch-norm tensors as graph inputs, modules inlined
    into functional calls) or one torch.fx.symbolic_trace made (module calls). Unlike convert() the
    parameters stay the graph's own, unfolded: the batch norm is folded into them by the graph at
    run time (a few small ops on the weights, which Inductor compiles), so the model trains
    through it. precision, db_path, on_miss: the fused calls' (see conv_transpose2d_epilogue)."""
    if not isinstance(gm, torch.fx.GraphModule):
        raise TypeError(f"rewrite: gm must be a torch.fx.GraphModule, got {type(gm).__name__}")
    if precision is not None:
        dtorch._resolve_precision(precision)
    if on_miss not in dtorch._native.ON_MISS:
        raise ValueError(f"rewrite: on_miss must be one of {sorted(dtorch._native.ON_MISS)}, got {on_miss!r}")
    matches, replaced = _matches(gm, graph_inputs=True), {}
    for match in matches:
        if match.record.fused:
            _rewrite_in_graph(gm, match, precision, db_path or "", on_miss, replaced)
    gm.graph.lint()
    gm.recompile()
    records = [m.record for m in matches]
    return (gm, records) if report else gm


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


def _traced(model):
    """A torch.fx trace of a copy of model (the original is never touched)."""
    try:
        return torch.fx.symbolic_trace(copy.deepcopy(model))
    except Exception as e:  # fx raises many types (TraceError, TypeError, ...) for untraceable code
        raise TypeError(f"convert: torch.fx cannot trace {type(model).__name__} ({type(e).__name__}: {e}); "
                        "data-dependent control flow in forward must move into a submodule") from e


def _build(model, options, unfused=frozenset()):
    """(the converted copy of model, its records): every fusable match fused (its module built with
    `options`) except those whose index (in graph order) is in `unfused`, whose records still say
    fused (convert rewrites them)."""
    gm = _traced(model)
    matches = _matches(gm)
    # Every call of a ConvTranspose2d module is matched: a module called more than once is here as often.
    conv_targets = [m.nodes[0].target for m in matches if m.nodes[0].op == "call_module"]
    replaced = {}
    for i, match in enumerate(matches):
        if match.record.fused and i not in unfused:
            _replace(gm, match, options, conv_targets, replaced)
    gm.delete_all_unused_submodules()
    gm.graph.lint()
    gm.recompile()
    return gm, [m.record for m in matches]


def _timed(example_inputs):
    """Whether convert() times the blocks on these inputs: only CUDA ones (on the CPU the fused
    module runs PyTorch's own ops, so a CPU timing says nothing about the kernels)."""
    return any(isinstance(t, torch.Tensor) and t.is_cuda for t in pytree.tree_flatten(example_inputs)[0])


def _time_block(fn, args, reps=20, warmup=3):
    """fn(*args)'s median time in ms on the GPU: CUDA events around each of `reps` runs after
    `warmup` untimed ones (the fused module's first call plans and may compile its kernel)."""
    device = next(a.device for a in args if isinstance(a, torch.Tensor))
    with torch.no_grad(), torch.cuda.device(device):
        for _ in range(warmup):
            fn(*args)
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        torch.cuda.synchronize()  # nothing queued before is counted in the first run
        for start, end in events:
            start.record()
            fn(*args)
            end.record()
        torch.cuda.synchronize()  # every end event has completed before it is read
        return statistics.median(start.elapsed_time(end) for start, end in events)


class _InputRecorder(torch.fx.Interpreter):
    """Runs a traced graph, keeping the values of the nodes asked for (the blocks' inputs)."""

    def __init__(self, gm, wanted):
        super().__init__(gm)
        self.wanted, self.values = set(wanted), {}

    def run_node(self, node):
        value = super().run_node(node)
        if node in self.wanted:  # a copy: an in-place op later in the graph may overwrite the value
            self.values[node] = value.clone() if isinstance(value, torch.Tensor) else value
        return value


def _original_block(gm, match):
    """The block's unfused ops (the convolution, its batch norm and chain as the model wrote them)
    as a module of one input, sharing gm's modules and tensors."""
    graph = torch.fx.Graph()
    copied = {match.call["input"]: graph.placeholder("x")}

    def copy_arg(node):
        if node not in copied:  # a weight, bias or statistics tensor read from the model
            assert node.op == "get_attr", node.format_node()
            copied[node] = graph.node_copy(node)
        return copied[node]

    for node in match.nodes:
        copied[node] = graph.node_copy(node, copy_arg)
    graph.output(copied[match.nodes[-1]])
    return torch.fx.GraphModule(gm, graph)


def _block_timings(model, example_inputs, options, indices):
    """{index: (fused ms, unfused ms)} for the blocks at those indices (graph order), each timed on
    its own input in the original model run on example_inputs: the fused module against the ops
    it replaces."""
    gm = _traced(model)
    matches = _matches(gm)
    recorder = _InputRecorder(gm, [matches[i].call["input"] for i in indices])
    with torch.no_grad():
        recorder.run(*example_inputs)
    timings = {}
    for i in indices:
        match, block_input = matches[i], (recorder.values[matches[i].call["input"]],)
        fused = dtorch.ConvTranspose2dEpilogue.from_conv_transpose(match.conv, match.epilogue, match.batchnorm,
                                                                   **options)
        timings[i] = (_time_block(fused, block_input), _time_block(_original_block(gm, match), block_input))
    return timings


def _keep_faster(timings):
    """{index: (stays fused, its reason)} from {index: (fused ms, unfused ms)}: a block stays fused
    only when fused is faster, so converting never makes the model slower on the example inputs."""
    decisions = {}
    for i, (fused_ms, unfused_ms) in timings.items():
        if fused_ms < unfused_ms:
            decisions[i] = (True, f"fused ({fused_ms:.3f} ms against {unfused_ms:.3f} ms unfused on the example "
                                  "inputs)")
        else:
            decisions[i] = (False, f"kept unfused: fused {fused_ms:.3f} ms, unfused {unfused_ms:.3f} ms on the example "
                                   "inputs")
    return decisions


def convert(model, example_inputs=None, precision=None, report=False, keep_faster=True, db_path=None):
    """A new module computing what `model` does, each ConvTranspose2d with the BatchNorm2d and
    elementwise ops after it fused into one ConvTranspose2dEpilogue; `model` is left untouched. It
    is a torch.fx.GraphModule: forward and the submodules it uses, not model's other methods.

    example_inputs (a tensor or a tuple of forward's arguments): when given, the converted model is
    checked against the original on them, within `precision`'s bound beyond the original's own
    error vs float64. On a mismatch each fused block is checked alone, and the ones that fail stay
    unfused; if the rest still fails together, every block stays unfused (the report says why).
    precision: the fused modules' ('fp32', 'tf32'; None: follow torch.backends.cudnn.allow_tf32).
    On CUDA example_inputs (and keep_faster=True) each block still fused is then timed on its own
    input there (CUDA events, median of 20), fused against the ops it replaces, and kept unfused
    where fused is not faster, so converting never makes the model slower on those inputs; the
    records give both times. On CPU inputs nothing is timed.
    report: also return a list of ConversionRecord, one per ConvTranspose2d, in graph order.
    db_path: the fused modules' tuning DB (None: the default; a DB deconvtune.torch.autotune filled
    gives them, and the keep-faster timing, the tuned kernels).
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
    if db_path is not None and not isinstance(db_path, (str, os.PathLike)):
        raise TypeError(f"convert: db_path must be a path or None, got {type(db_path).__name__}")
    options = {"precision": precision, "db_path": None if db_path is None else os.fspath(db_path)}
    converted, records = _build(model, options)
    fused = {i for i, r in enumerate(records) if r.fused}
    if not (example_inputs and fused):
        return (converted, records) if report else converted
    example_inputs = tuple(example_inputs)
    reference = _reference(model, example_inputs)
    mismatch = _check(reference, converted, example_inputs, precision)
    if mismatch:
        failing = {}
        for i in sorted(fused):
            alone = _check(reference, _build(model, options, fused - {i})[0], example_inputs, precision)
            if alone:
                failing[i] = f"kept unfused: with only this block fused, {alone}"
        converted, records = _build(model, options, set(failing))
        together = _check(reference, converted, example_inputs, precision) if fused - set(failing) else ""
        if together:  # each of the rest passes alone, not all of them at once
            failing = {i: f"kept unfused: with every block fused, {mismatch}" for i in fused}
            converted, records = _build(model, options, fused)
        for i, why in failing.items():
            records[i].fused, records[i].reason = False, why
    if keep_faster and _timed(example_inputs):
        converted, records = _keep_the_faster(model, example_inputs, options, converted, records)
    return (converted, records) if report else converted


def _keep_the_faster(model, example_inputs, options, converted, records):
    """convert()'s result with every fused block that is not faster than its ops kept unfused, and
    every timed block's reason giving both times."""
    fused = [i for i, r in enumerate(records) if r.fused]
    if not fused:
        return converted, records
    decisions = _keep_faster(_block_timings(model, example_inputs, options, fused))
    slower = {i for i, (stays_fused, _) in decisions.items() if not stays_fused}
    if slower:  # those blocks run the model's own ops again: their error is the original's
        reasons = [r.reason for r in records]
        converted, records = _build(model, options, set(range(len(records))) - set(fused) | slower)
        for record, reason in zip(records, reasons):
            record.fused = record.fused and reason.startswith("fused")
            record.reason = reason
    for i, (stays_fused, reason) in decisions.items():
        chain = records[i].reason.partition(";")[2]  # where the chain stops, after 'fused'
        records[i].fused, records[i].reason = stays_fused, reason + (f";{chain}" if chain else "")
    return converted, records
