"""A PEP 517 build backend for the pure-Python deconvtune package, standard library only.

pip runs it in-tree (pyproject.toml: backend-path = ["."], requires = []), so `pip install ./python`
needs neither network access (no setuptools download) nor a compiler. It builds a py3-none-any wheel
of the deconvtune/ folder with zipfile, and an sdist of this folder with tarfile.
"""
import base64
import hashlib
import io
import os
import re
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
NAME = "deconvtune"
SUMMARY = "Tuned fused ConvTranspose2d + epilogue CUDA kernels, with a PyTorch drop-in module"


def _version():
    with open(os.path.join(HERE, NAME, "_version.py"), encoding="utf-8") as f:
        match = re.search(r'^__version__ = "([^"]+)"$', f.read(), re.MULTILINE)
    if not match:
        raise RuntimeError("deconvtune/_version.py has no __version__ = \"...\" line")
    return match.group(1)


def _dist_info():
    return f"{NAME}-{_version()}.dist-info"


def _metadata():
    return (f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {_version()}\nSummary: {SUMMARY}\n"
            "Requires-Python: >=3.8\nProvides-Extra: torch\n"
            "Requires-Dist: torch>=2.4; extra == \"torch\"\n")


# torch.compile(model, backend="deconvtune") finds the backend through this entry point (PyTorch
# reads the group when a backend name is not registered), without an import or enable() first.
ENTRY_POINTS = "[torch_dynamo_backends]\ndeconvtune = deconvtune.torch:backend\n"


def _wheel_file():
    return "Wheel-Version: 1.0\nGenerator: deconvtune build_backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _package_files():
    """(path in the wheel, bytes) of every .py file of the package, in a stable order."""
    files = []
    root = os.path.join(HERE, NAME)
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    files.append((os.path.relpath(path, HERE).replace(os.sep, "/"), f.read()))
    return files


def _record_line(path, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    target = os.path.join(metadata_directory, _dist_info())
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    with open(os.path.join(target, "WHEEL"), "w", encoding="utf-8") as f:
        f.write(_wheel_file())
    with open(os.path.join(target, "entry_points.txt"), "w", encoding="utf-8") as f:
        f.write(ENTRY_POINTS)
    return _dist_info()


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = f"{NAME}-{_version()}-py3-none-any.whl"
    entries = _package_files()
    info = _dist_info()
    entries += [(f"{info}/METADATA", _metadata().encode()), (f"{info}/WHEEL", _wheel_file().encode()),
                (f"{info}/top_level.txt", f"{NAME}\n".encode()), (f"{info}/entry_points.txt", ENTRY_POINTS.encode())]
    record = "\n".join(_record_line(p, d) for p, d in entries) + f"\n{info}/RECORD,,\n"
    entries.append((f"{info}/RECORD", record.encode()))
    os.makedirs(wheel_directory, exist_ok=True)
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in entries:
            # A fixed timestamp: the same sources give the same wheel.
            entry = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            wheel.writestr(entry, data, zipfile.ZIP_DEFLATED)
    return name


def build_sdist(sdist_directory, config_settings=None):
    base = f"{NAME}-{_version()}"
    name = f"{base}.tar.gz"
    os.makedirs(sdist_directory, exist_ok=True)
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as sdist:
        for path in ["pyproject.toml", "build_backend.py", "README.md"] + [p for p, _ in _package_files()]:
            if os.path.exists(os.path.join(HERE, path)):
                sdist.add(os.path.join(HERE, path), arcname=f"{base}/{path}")
        pkg_info = _metadata().encode()
        entry = tarfile.TarInfo(f"{base}/PKG-INFO")
        entry.size = len(pkg_info)
        sdist.addfile(entry, io.BytesIO(pkg_info))
    return name
