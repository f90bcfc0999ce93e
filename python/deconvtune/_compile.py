"""The torch.compile backend: `torch.compile(model, backend="deconvtune")`, no model change.

    import deconvtune.torch as dtorch
    dtorch.enable()                                   # registers the name "deconvtune" with dynamo
    fast = torch.compile(model, backend="deconvtune")  # or backend=dtorch.backend, without enable()
    fast = torch.compile(model, backend="deconvtune", options={"precision": "tf32"})

The backend takes the FX graph dynamo captured, rewrites each ConvTranspose2d with the eval-mode
batch norm and elementwise chain after it to one fused call (deconvtune.torch.rewrite: the matcher
convert() uses, run on the captured graph), then hands the rewritten graph to Inductor, which
compiles the rest and keeps the fused op (the custom op, PyTorch >= 2.4) as one opaque call.
Without Inductor, or with options={"inductor": False}, the rewritten graph runs as it is.

Dynamic batch: the custom op's fake kernel is shape-generic (its output shape is ConvTranspose2d's
formula on the symbolic sizes, no specialisation on the batch), so the graph compiles for a
symbolic batch. Dynamo itself compiles a graph for the first batch size it sees and, with its
default automatic dynamic shapes, once more for a symbolic batch at the second; after that no
batch size recompiles (torch.compile(..., dynamic=True) or torch._dynamo.mark_dynamic(x, 0) skips
even that one). On CUDA each batch size is its own problem for the engine: planned once (from
the tuning DB, or the heuristic) and cached.

Nothing here imports torch._dynamo or Inductor until a backend is compiled or enable() runs, so
deconvtune.torch imports on PyTorch 1.13, where rewrite() is the part that runs.
"""
import logging
import threading
import warnings

from . import torch as dtorch
from ._convert import rewrite

NAME = "deconvtune"
_OPTIONS = ("precision", "db_path", "on_miss", "inductor")
_log = logging.getLogger("deconvtune.torch")
_lock = threading.Lock()
_reports = []  # (dynamo's frame and compile ids or None, the graph's ConversionRecords), in order


def compile_reports():
    """What the backend did: one list of ConversionRecord (one per ConvTranspose2d, fused or why
    not) per graph it compiled in this process, oldest first (where dynamo restarted a graph's
    analysis, the attempt that stands)."""
    with _lock:
        return [list(records) for _, records in _reports]


def _graph_id():
    """(frame id, compile id) of the graph dynamo is compiling and whether this is a restarted
    attempt at it; (None, False) where this PyTorch does not say."""
    try:
        from torch._guards import CompileContext
        trace = CompileContext.current_trace_id()  # (compile id, attempt): "0/0_1" is attempt 1
        return (trace.compile_id.frame_id, trace.compile_id.frame_compile_id), trace.attempt > 0
    except (ImportError, AttributeError):  # no such API here, or no graph being compiled (None)
        return None, False


def _record(records):
    """Keeps one report per graph: dynamo may restart a graph's analysis after the backend ran
    (PyTorch 2.11 does, under dynamic=True, to specialise a float such as a batch norm's eps, as
    compile id 0/0_1), and the new attempt's report replaces the abandoned one's."""
    graph, restarted = _graph_id()
    with _lock:
        if restarted and graph is not None and _reports and _reports[-1][0] == graph:
            _reports[-1] = (graph, records)
        else:
            _reports.append((graph, records))


def backend(gm, example_inputs, mode=None, options=None):
    """A torch.compile backend (dynamo calls it with the captured GraphModule and its example
    inputs): rewrite(), then Inductor. options (torch.compile's `options=`): "precision" (None:
    follow torch.backends.cudnn.allow_tf32 at run time; "fp32", "tf32"), "db_path", "on_miss"
    (the fused calls'), "inductor" (False: run the rewritten graph without Inductor); any other key
    is an Inductor config patch. mode: Inductor's (torch.compile's `mode=`)."""
    options = dict(options or {})
    ours = {k: options.pop(k) for k in _OPTIONS if k in options}
    gm, records = rewrite(gm, precision=ours.get("precision"), report=True, db_path=ours.get("db_path"),
                          on_miss=ours.get("on_miss", "heuristic"))
    _record(records)
    for record in records:
        _log.info("deconvtune backend: %s: %s", record.name, record.reason)
    if not ours.get("inductor", True):
        return gm.forward
    if any(r.fused for r in records) and not dtorch.HAS_CUSTOM_OP:
        warnings.warn("deconvtune backend: PyTorch < 2.4 has no torch.library.custom_op, so Inductor cannot "
                      "keep the fused op whole; the rewritten graph runs without Inductor", RuntimeWarning)
        return gm.forward
    try:
        from torch._inductor.compile_fx import compile_fx
    except ImportError as e:
        warnings.warn(f"deconvtune backend: Inductor is not available ({e}); the rewritten graph runs without it",
                      RuntimeWarning)
        return gm.forward
    patches = dict(options)
    if mode not in (None, "default"):
        from torch._inductor import list_mode_options
        patches = {**list_mode_options(mode), **patches}
    return compile_fx(gm, example_inputs, config_patches=patches or None)


def enable():
    """Registers the backend with dynamo under the name "deconvtune" (once; later calls do
    nothing), so torch.compile(model, backend="deconvtune") finds it. Returns the name. Needs
    PyTorch >= 2 (torch.compile); raises RuntimeError saying so on older PyTorch. (An installed
    package also declares it as a torch_dynamo_backends entry point, which PyTorch versions that
    read them find without enable().)"""
    try:
        import torch._dynamo
        register = torch._dynamo.register_backend
        listed = torch._dynamo.list_backends(exclude_tags=())
    except (ImportError, AttributeError) as e:
        import torch
        raise RuntimeError(f"deconvtune.torch.enable: torch.compile needs PyTorch >= 2, this is {torch.__version__} "
                           f"({type(e).__name__}: {e}); convert() and rewrite() work here") from None
    with _lock:
        if NAME not in listed:
            try:
                register(compiler_fn=backend, name=NAME)
            except AssertionError:  # registered meanwhile (through the entry point, say)
                pass
    return NAME
