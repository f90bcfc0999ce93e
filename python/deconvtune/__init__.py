"""deconvtune: tuned fused ConvTranspose2d + elementwise epilogue CUDA kernels.

    import deconvtune
    deconvtune.__version__                      # this package's version
    engine = deconvtune.Engine(precision="tf32")
    plan = engine.plan({"batch": 8, "in_channels": 64, ...})   # PyTorch's argument names
    plan.run(x_ptr, w_ptr, bias_ptr, y_ptr, stream)            # device addresses

deconvtune.torch (needs PyTorch): the fused module ConvTranspose2dEpilogue, its functional form,
and convert(model), which fuses every ConvTranspose2d block of an existing model. deconvtune.db
reads the tuning DB's winners (through the deconvtune command line). The C library
(libdeconvtune.so) is loaded on first use; see deconvtune._native for where it is looked for.
"""
from ._version import __version__
from ._native import (BadProblemError, DeconvtuneError, Engine, LibraryNotFoundError, NoGpuError,
                      NotTunedError, Plan, gpu_available, library, library_path, library_version)

__all__ = ["__version__", "Engine", "Plan", "DeconvtuneError", "BadProblemError", "NoGpuError",
           "NotTunedError", "LibraryNotFoundError", "gpu_available", "library", "library_path",
           "library_version"]
