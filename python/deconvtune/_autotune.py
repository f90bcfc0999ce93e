"""deconvtune.torch.autotune: tune the problems a model's fused blocks meet, from Python.

    import deconvtune.torch as dtorch
    results = dtorch.autotune(model, (x,), budget_s=600)     # model: converted or not
    for r in results:
        print(r.name, r.label, r.winner, r.winner_ms, r.reason)

It records each fused block's problem shape on the example inputs (the model is run once, on a
copy, with each ConvTranspose2dEpilogue computing with PyTorch's ops: no kernel is planned or
compiled for it), writes them to a problems file (JSON lines, one per problem, named by the
blocks' module paths) and runs the command-line tuner on it, `deconvtune autotune --problems FILE
--json`, as a subprocess, its progress passed through to sys.stderr. The winners land in the
tuning DB, where the model's fused modules find them.
"""
import copy
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import threading

import torch
from torch import nn

from . import _native
from . import db as _db
from . import torch as dtorch

_EXIT_OK, _EXIT_FAILURE, _EXIT_BAD_INPUT, _EXIT_NO_GPU, _EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class AutotuneError(_native.DeconvtuneError):
    """The tuner did not finish: exit_code is the CLI's exit status, the message its own."""

    def __init__(self, status, message, exit_code):
        super().__init__(status, message)
        self.exit_code = exit_code


class AutotuneNoGpuError(AutotuneError, _native.NoGpuError):
    """The tuner found no GPU to measure on (the CLI's exit code 3)."""


@dataclasses.dataclass
class ProblemResult:
    """One tuned problem. name: the module paths of the blocks that meet it ('0', or '0, 3' when
    two blocks meet the same problem); problem: its spec (PyTorch's argument names, as written to
    the problems file); winner and winner_ms: the fastest verified config and its median time on
    this GPU (None when none verified); reason: '' with a winner, else why there is none."""
    name: str
    problem: dict
    problem_key: str = ""
    label: str = ""
    winner: str = None
    winner_ms: float = None
    reason: str = ""
    trials: int = 0  # measured in this run
    skipped: int = 0  # already in the DB for this GPU, not measured again
    stopped_by_budget: bool = False


def _record_problems(model, example_inputs, precision):
    """[(names, spec)] of the problems the ConvTranspose2dEpilogue modules of `model` meet on
    example_inputs, in call order, each spec once. Runs a copy with each fused module computing
    with PyTorch's ops (on any device, without the engine)."""
    found = []
    model = copy.deepcopy(model)  # a training-mode BatchNorm would update its statistics

    def recording_forward(module, name, x):
        spec = json.loads(module.problem(x.shape, precision or module.current_precision()))
        for names, seen in found:
            if seen == spec:
                if name not in names:
                    names.append(name)
                break
        else:
            found.append(([name], spec))
        conv = module.conv_transpose
        return dtorch._reference(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.output_padding,
                                 conv.groups, conv.dilation, module.epilogue)

    for name, module in model.named_modules():
        if isinstance(module, dtorch.ConvTranspose2dEpilogue):
            module.forward = (lambda m, n: lambda x: recording_forward(m, n, x))(module, name or "(model)")
    with torch.no_grad():
        model(*example_inputs)
    return found


def _run_cli(command, progress):
    """(exit code, stdout, the last of stderr) of the tuner; its stderr goes on to sys.stderr as
    it comes when `progress`. Ctrl-C here stops it (SIGINT: it keeps the trials so far)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    tail = []

    def pump():
        for line in iter(process.stderr.readline, b""):
            text = line.decode("utf-8", "replace")
            tail.append(text)
            del tail[:-40]
            if progress:
                sys.stderr.write(text)
                sys.stderr.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        stdout = process.stdout.read()
        process.wait()
    except KeyboardInterrupt:
        process.send_signal(2)  # SIGINT: the tuner stops after the trial it is in, the DB keeps the rest
        process.wait()
        raise
    finally:
        reader.join(timeout=10)
        process.stdout.close()
        process.stderr.close()
    return process.returncode, stdout.decode("utf-8", "replace"), "".join(tail).strip()


def _why_not(line):
    """Why a problem of the tuner's JSON summary has no winner."""
    if line.get("error"):
        return line["error"]
    statuses = ", ".join(f"{count} {status}" for status, count in sorted((line.get("statuses") or {}).items()))
    why = "no config verified" + (f" ({statuses})" if statuses else " (none was measured)")
    reasons = [f"{t.get('config')}: {t.get('reason') or t.get('status')}" for t in (line.get("not_used") or [])[:3]]
    if reasons:
        why += "; e.g. " + "; ".join(reasons)
    if line.get("stopped_by_budget"):
        why += "; stopped by the budget"
    return why


def autotune(model, example_inputs, budget_s=None, precision=None, db=None, progress=True, max_trials=None,
             problems_file=None, simulate=False):
    """Tunes, into the tuning DB, every problem the fused blocks of `model` meet on example_inputs
    (a tensor or a tuple of forward's arguments), with the command-line tuner; returns one
    ProblemResult per problem, in call order.

    model: a converted model (its ConvTranspose2dEpilogue modules are the blocks) or any other,
    which is converted first (deconvtune.torch.convert, without a check). budget_s: the tuner's
    --budget-seconds for the whole run, each problem getting an equal share of what is left when
    it starts and its rule default measured whatever is left (None: no limit); precision: the problems' ('fp32', 'tf32';
    None: each block's own); db: the tuning DB's path (None: the default, $DECONVTUNE_DB, else the
    user's cache); progress: pass the tuner's progress through to sys.stderr (False: -q, only
    errors); max_trials: at most this many candidates per problem; problems_file: where to write
    the problems (None: a temporary file, removed after). simulate: the tuner's test mode (no GPU,
    simulated timings: for tests only).

    Raises AutotuneNoGpuError (a deconvtune.NoGpuError) with the CLI's message when there is no
    GPU to measure on, AutotuneError for bad input (exit 2), an interrupted run (130: the trials
    so far are kept, rerun to resume) or another failure, db.CliNotFoundError when the CLI is not
    found. A problem without a verified winner is not an error: its ProblemResult says why."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"autotune: model must be a torch.nn.Module, got {type(model).__name__}")
    if isinstance(example_inputs, torch.Tensor):
        example_inputs = (example_inputs,)
    elif not isinstance(example_inputs, (tuple, list)):
        raise TypeError(f"autotune: example_inputs must be a tensor or a tuple of forward's arguments, got "
                        f"{type(example_inputs).__name__}")
    if precision is not None:
        dtorch._resolve_precision(precision)
    if budget_s is not None and not (isinstance(budget_s, (int, float)) and budget_s >= 0 and budget_s < float("inf")):
        raise ValueError(f"autotune: budget_s must be a number of seconds >= 0 or None, got {budget_s!r}")
    if max_trials is not None and (not isinstance(max_trials, int) or isinstance(max_trials, bool) or max_trials < 1):
        raise ValueError(f"autotune: max_trials must be an int >= 1 or None, got {max_trials!r}")
    if not any(isinstance(m, dtorch.ConvTranspose2dEpilogue) for m in model.modules()):
        model = dtorch.convert(model, precision=precision)
    found = _record_problems(model, tuple(example_inputs), precision)
    if not found:
        if progress:
            sys.stderr.write("deconvtune autotune: the model has no fused ConvTranspose2d block (see "
                             "convert(model, report=True)); nothing to tune\n")
        return []
    cli = _db.cli_path()
    with tempfile.TemporaryDirectory(prefix="deconvtune-autotune-") as folder:
        path = os.fspath(problems_file) if problems_file is not None else os.path.join(folder, "problems.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for names, spec in found:
                f.write(json.dumps({"name": ", ".join(names), **spec}) + "\n")
        command = [cli, "autotune", "--problems", path, "--json"]
        if db is not None:
            command += ["--db", os.fspath(db)]
        if budget_s:
            command += ["--budget-seconds", repr(float(budget_s))]
        if max_trials is not None:
            command += ["--max-trials", str(max_trials)]
        if not progress:
            command.append("-q")
        if simulate:
            command.append("--simulate")
        code, stdout, stderr = _run_cli(command, progress)
    if code == _EXIT_NO_GPU:
        raise AutotuneNoGpuError(_native.NO_GPU, f"deconvtune autotune found no GPU (exit 3): {stderr}", code)
    if code == _EXIT_BAD_INPUT:
        raise AutotuneError(_native.INVALID_ARGUMENT, f"deconvtune autotune refused its input (exit 2): {stderr}",
                            code)
    if code == _EXIT_INTERRUPTED:
        raise AutotuneError(_native.TUNING, f"deconvtune autotune was interrupted (exit 130); the trials so far "
                                            f"are in the DB, rerun to resume: {stderr}", code)
    try:
        document = json.loads(stdout) if code in (_EXIT_OK, _EXIT_FAILURE) else None
    except ValueError:
        document = None
    if document is None:
        raise AutotuneError(_native.TUNING, f"deconvtune autotune failed (exit {code}): {stderr}", code)
    lines = {line.get("name"): line for line in document.get("problems", [])}
    results = []
    for names, spec in found:
        name = ", ".join(names)
        line = lines.get(name)
        if line is None:
            results.append(ProblemResult(name, spec, reason="the tuner's summary does not list it"))
            continue
        winner = line.get("winner")
        results.append(ProblemResult(
            name, spec, problem_key=line.get("problem_key", ""), label=line.get("label", ""), winner=winner,
            winner_ms=line.get("winner_ms"), reason="" if winner else _why_not(line), trials=line.get("trials", 0),
            skipped=line.get("skipped", 0), stopped_by_budget=bool(line.get("stopped_by_budget"))))
    return results
