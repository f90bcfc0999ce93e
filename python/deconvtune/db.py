"""deconvtune.db: the tuning DB's winners, read-only.

    import deconvtune.db
    for w in deconvtune.db.winners():            # or winners("tuning.db")
        print(w.problem["batch"], w.device["name"], w.precision, w.config, w.median_ms)

It reads through the command line's `deconvtune db export --format json`: the CLI is the one reader
of the DB (schema migrations, refusal of corrupt or newer files, the trust rules for winners), so
nothing here opens the SQLite file. The CLI is looked for as the library looks for its measuring
workers: $DECONVTUNE_WORKER, then beside libdeconvtune.so (bin/deconvtune next to its lib/ folder,
as `cmake --install` lays it out, or the same folder, as in the build tree), then PATH.
"""
import dataclasses
import json
import os
import shutil
import subprocess

from . import _native

EXPORT_FORMAT = "deconvtune-tuning-db"
EXPORT_VERSION = 1


class CliNotFoundError(FileNotFoundError):
    """The deconvtune command line was not found; the message lists where it was looked for."""


@dataclasses.dataclass(frozen=True)
class Winner:
    """The fastest verified config of one problem on one GPU, generator version and precision."""
    problem: dict  # the problem spec, PyTorch's argument names (batch, in_channels, ...)
    problem_key: str
    device: dict  # name, arch, sm_count, driver_version, nvrtc_version
    device_key: str
    generator_version: object
    precision: str
    config: str
    median_ms: float
    max_error: float
    updated_at: object


def cli_path():
    """The deconvtune executable, or CliNotFoundError listing every place tried."""
    tried = []
    env = os.environ.get("DECONVTUNE_WORKER")
    if env:
        if os.path.isfile(env) and os.access(env, os.X_OK):
            return env
        raise CliNotFoundError(f"deconvtune: $DECONVTUNE_WORKER is {env!r}, not an executable file")
    try:
        library_folder = os.path.dirname(os.path.realpath(_native.library_path()))
    except _native.LibraryNotFoundError:
        tried.append("  beside libdeconvtune.so: the library itself was not found")
    else:
        for candidate in (os.path.join(os.path.dirname(library_folder), "bin", "deconvtune"),
                          os.path.join(library_folder, "deconvtune")):
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
            tried.append(f"  beside libdeconvtune.so: {candidate} (no such executable)")
    on_path = shutil.which("deconvtune")
    if on_path:
        return on_path
    tried.append("  PATH: no deconvtune")
    raise CliNotFoundError("deconvtune: cannot find the deconvtune command line (it reads the tuning DB); "
                           "install it (cmake --install) or set DECONVTUNE_WORKER to its path. Looked:\n"
                           + "\n".join(tried))


def export(db_path=None, everything=False):
    """The DB's export document (the CLI's `db export --format json`: format, version, devices,
    problems, winners and the trials backing them; every trial with everything=True). db_path None:
    the default DB ($DECONVTUNE_DB, else the user's cache). A missing DB exports as an empty one."""
    command = [cli_path(), "db", "export", "--format", "json"] + (["--all"] if everything else [])
    if db_path is not None:
        command += ["--db", os.fspath(db_path)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        status = _native.INVALID_ARGUMENT if result.returncode == 2 else _native.DATABASE
        raise _native.DeconvtuneError(status, f"deconvtune db export failed (exit {result.returncode}): "
                                              f"{result.stderr.strip()}")
    document = json.loads(result.stdout)
    if document.get("format") != EXPORT_FORMAT or document.get("version") != EXPORT_VERSION:
        raise _native.DeconvtuneError(_native.DATABASE, f"deconvtune db export wrote format "
                                      f"{document.get('format')!r} version {document.get('version')!r}; this "
                                      f"package reads {EXPORT_FORMAT!r} version {EXPORT_VERSION}")
    return document


def winners(db_path=None):
    """Every winner of the DB (see Winner), in the export's order: problem, device, generator
    version, precision."""
    document = export(db_path)
    devices = {d["key"]: {k: v for k, v in d.items() if k != "key"} for d in document["devices"]}
    problems = {p["key"]: p["spec"] for p in document["problems"]}
    return [Winner(problem=problems.get(w["problem_key"]), problem_key=w["problem_key"],
                   device=devices.get(w["device_key"]), device_key=w["device_key"],
                   generator_version=w["generator_version"], precision=w["precision"], config=w["config_name"],
                   median_ms=w["median_ms"], max_error=w["max_error"], updated_at=w["updated_at"])
            for w in document["winners"]]
