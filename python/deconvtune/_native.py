"""ctypes bindings of libdeconvtune.so's C API (include/deconvtune/deconvtune.h).

The library is looked for, in order: $DECONVTUNE_LIBRARY_PATH (the file, or a folder holding it),
next to this package (a libdeconvtune.so* copied into the package folder), then the system's
search path (LD_LIBRARY_PATH, the ld.so cache, ctypes.util.find_library). When none works, the
LibraryNotFoundError lists every place tried and why it failed. Loading happens on first use, so
`import deconvtune` works without the library.
"""
import ctypes
import ctypes.util
import glob
import json
import os
import threading

_HERE = os.path.dirname(os.path.abspath(__file__))
_SONAMES = ("libdeconvtune.so", "libdeconvtune.so.0.1")

# deconvtune_status values (deconvtune.h).
OK = 0
INVALID_ARGUMENT = 1
BAD_PROBLEM = 2
NO_GPU = 3
NOT_TUNED = 4
CUDA = 5
COMPILE = 6
DATABASE = 7
TUNING = 8
INTERNAL = 9

ON_MISS = {"heuristic": 0, "tune": 1, "fail": 2}
PRECISIONS = {"fp32": 0, "tf32": 1}


class LibraryNotFoundError(ImportError):
    """libdeconvtune.so could not be loaded; the message lists where it was looked for."""


class DeconvtuneError(RuntimeError):
    """A failed C API call: `status` is the deconvtune_status code, the message the library's."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class BadProblemError(DeconvtuneError, ValueError):
    """The problem breaks a rule; the message names the field."""


class NoGpuError(DeconvtuneError):
    """No CUDA driver or no GPU (or no GPU with that ordinal)."""


class NotTunedError(DeconvtuneError):
    """on_miss='fail' and the tuning database has no winner for the problem on this GPU."""


_ERROR_CLASSES = {BAD_PROBLEM: BadProblemError, NO_GPU: NoGpuError, NOT_TUNED: NotTunedError}

_lock = threading.Lock()
_library = None


def _candidates():
    """(description, path or name to dlopen) in search order."""
    found = []
    env = os.environ.get("DECONVTUNE_LIBRARY_PATH")
    if env:
        if os.path.isdir(env):
            matches = sorted(glob.glob(os.path.join(env, "libdeconvtune.so*")))
            found += [("$DECONVTUNE_LIBRARY_PATH", p) for p in matches] or [
                ("$DECONVTUNE_LIBRARY_PATH", os.path.join(env, "libdeconvtune.so"))]
        else:
            found.append(("$DECONVTUNE_LIBRARY_PATH", env))
    package_copies = sorted(glob.glob(os.path.join(_HERE, "libdeconvtune.so*")))
    found += [("next to the package", p) for p in package_copies] or [
        ("next to the package", os.path.join(_HERE, "libdeconvtune.so"))]
    found += [("the system search path", name) for name in _SONAMES]
    system = ctypes.util.find_library("deconvtune")
    if system:
        found.append(("ctypes.util.find_library", system))
    return found


def _declare(lib):
    c_status = ctypes.c_int
    engine_p = ctypes.c_void_p
    plan_p = ctypes.c_void_p
    signatures = {
        "deconvtune_version": (ctypes.c_char_p, []),
        "deconvtune_last_error": (ctypes.c_char_p, []),
        "deconvtune_status_name": (ctypes.c_char_p, [c_status]),
        "deconvtune_gpu_available": (ctypes.c_int, []),
        "deconvtune_engine_create": (c_status, [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                                ctypes.POINTER(engine_p)]),
        "deconvtune_engine_destroy": (None, [engine_p]),
        "deconvtune_engine_plan": (c_status, [engine_p, ctypes.c_char_p, ctypes.POINTER(plan_p)]),
        "deconvtune_plan_destroy": (None, [plan_p]),
        "deconvtune_plan_run": (c_status, [plan_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                           ctypes.c_void_p, ctypes.c_void_p]),
        "deconvtune_plan_output_shape": (c_status, [plan_p, ctypes.POINTER(ctypes.c_int64)]),
        "deconvtune_plan_x_alignment": (c_status, [plan_p, ctypes.POINTER(ctypes.c_int64)]),
        "deconvtune_plan_config": (ctypes.c_char_p, [plan_p]),
        "deconvtune_plan_source": (ctypes.c_char_p, [plan_p]),
        "deconvtune_plan_problem_key": (ctypes.c_char_p, [plan_p]),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype = restype
        function.argtypes = argtypes


def library():
    """The loaded libdeconvtune (a ctypes.CDLL); raises LibraryNotFoundError listing the places tried."""
    global _library
    with _lock:
        if _library is not None:
            return _library
        tried = []
        for where, path in _candidates():
            if os.sep in path and not os.path.exists(path):
                tried.append(f"  {where}: {path} (no such file)")
                continue
            try:
                lib = ctypes.CDLL(path)
                _declare(lib)
            except (OSError, AttributeError) as e:
                tried.append(f"  {where}: {path} ({e})")
                continue
            _library = lib
            return lib
        raise LibraryNotFoundError(
            "deconvtune: cannot load libdeconvtune.so. Build it (cmake --build build) and point "
            "DECONVTUNE_LIBRARY_PATH at it (the file or its folder), copy it next to the package, or "
            "install it on the system library path. Looked in:\n" + "\n".join(tried))


def library_path():
    """The file the library was loaded from (after library())."""
    return library()._name


def _check(status):
    if status != OK:
        lib = library()
        message = lib.deconvtune_last_error().decode("utf-8", "replace")
        name = lib.deconvtune_status_name(status).decode()
        raise _ERROR_CLASSES.get(status, DeconvtuneError)(status, f"{message} [{name}]")


def library_version():
    return library().deconvtune_version().decode()


def gpu_available():
    """(True, "") or (False, the reason)."""
    lib = library()
    if lib.deconvtune_gpu_available():
        return True, ""
    return False, lib.deconvtune_last_error().decode("utf-8", "replace")


class Plan:
    """A kernel ready to launch for one problem on one device (see deconvtune.h)."""

    def __init__(self, handle):
        lib = library()
        self._lib = lib
        self._handle = ctypes.c_void_p(handle)
        self._run = lib.deconvtune_plan_run
        self.config = lib.deconvtune_plan_config(self._handle).decode()
        self.source = lib.deconvtune_plan_source(self._handle).decode()
        self.problem_key = lib.deconvtune_plan_problem_key(self._handle).decode()
        shape = (ctypes.c_int64 * 4)()
        _check(lib.deconvtune_plan_output_shape(self._handle, shape))
        self.output_shape = tuple(shape)
        alignment = ctypes.c_int64()
        _check(lib.deconvtune_plan_x_alignment(self._handle, ctypes.byref(alignment)))
        self.x_alignment = alignment.value  # bytes: run() refuses an x that starts elsewhere

    def run(self, x, w, bias, y, stream=0):
        """Enqueues the kernel on `stream` (a CUstream/cudaStream_t as an int; 0: the legacy
        default stream). x, w, bias, y are device addresses (ints); bias 0 when the problem has none."""
        status = self._run(self._handle, x, w, bias or None, y, stream or None)
        if status != OK:
            _check(status)

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None and handle.value:
            self._lib.deconvtune_plan_destroy(handle)

    def __repr__(self):
        return f"Plan({self.problem_key!r}, config={self.config!r}, source={self.source!r})"


class Engine:
    """Plans for problems on one GPU (see deconvtune.h). on_miss: 'heuristic', 'tune' or 'fail';
    precision: 'fp32' or 'tf32' (the default for problems that do not name one)."""

    def __init__(self, db_path=None, on_miss="heuristic", precision="fp32", device=0):
        if on_miss not in ON_MISS:
            raise ValueError(f"on_miss must be one of {sorted(ON_MISS)}, got {on_miss!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        if not isinstance(device, int) or isinstance(device, bool) or device < 0:
            raise ValueError(f"device must be a CUDA device ordinal (an int >= 0), got {device!r}")
        lib = library()
        self._lib = lib
        handle = ctypes.c_void_p()
        _check(lib.deconvtune_engine_create(None if db_path is None else os.fsencode(db_path),
                                            ON_MISS[on_miss], PRECISIONS[precision], device,
                                            ctypes.byref(handle)))
        self._handle = handle
        self.device = device

    def plan(self, problem):
        """problem: a dict with PyTorch's ConvTranspose2d argument names, or its JSON text."""
        text = problem if isinstance(problem, str) else json.dumps(problem)
        handle = ctypes.c_void_p()
        _check(self._lib.deconvtune_engine_plan(self._handle, text.encode(), ctypes.byref(handle)))
        return Plan(handle.value)

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None and handle.value:
            self._lib.deconvtune_engine_destroy(handle)
