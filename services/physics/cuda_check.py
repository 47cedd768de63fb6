"""Compile the physics' CUDA module without a GPU: NVRTC to PTX, ptxas to sm_XX.

NVRTC (the compiler CuPy uses at run time) and ptxas need no device, only their
libraries: the ``nvidia-cuda-nvrtc-cu12`` and ``nvidia-cuda-nvcc-cu12`` wheels (the
``dev`` extra installs them on Linux x86-64). :func:`compile_ptx` runs NVRTC on the
module source with the production or the parity options, exactly as
:class:`~engs.services.physics.gpu.CupyExecutor` does on a device; :func:`ptxas_usage`
assembles the PTX for a real architecture and returns each kernel's registers, spills
and shared memory, the figures a static review of the kernels starts from.

Used by the tests (a CUDA-only syntax or type error shows on a machine without a GPU)
and by ``ops/gpu-check.sh``; not on the service's path.
"""

from __future__ import annotations

import ctypes
import glob
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from functools import cache

from engs.shared.errors import NotAvailable


def _nvidia_dirs(*parts: str) -> list[str]:
    """Paths under the ``nvidia`` namespace package of the installed CUDA wheels."""
    try:
        import nvidia  # noqa: PLC0415 - optional, from the CUDA wheels
    except ImportError:
        return []
    return [os.path.join(d, *parts) for d in getattr(nvidia, "__path__", [])]


@cache
def _nvrtc() -> ctypes.CDLL:
    candidates = [
        p for d in _nvidia_dirs("cuda_nvrtc", "lib") for p in sorted(glob.glob(f"{d}/libnvrtc.so*"))
    ]
    candidates += ["libnvrtc.so.12", "libnvrtc.so"]
    errors = []
    for path in candidates:
        if "alt" in os.path.basename(path) or "builtins" in os.path.basename(path):
            continue
        try:
            lib = ctypes.CDLL(path)
        except OSError as exc:
            errors.append(f"{path}: {exc}")
            continue
        vp, cp, i = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
        sz = ctypes.POINTER(ctypes.c_size_t)
        lib.nvrtcCreateProgram.argtypes = [ctypes.POINTER(vp), cp, cp, i, vp, vp]
        lib.nvrtcCompileProgram.argtypes = [vp, i, ctypes.POINTER(cp)]
        lib.nvrtcGetProgramLogSize.argtypes = [vp, sz]
        lib.nvrtcGetProgramLog.argtypes = [vp, cp]
        lib.nvrtcGetPTXSize.argtypes = [vp, sz]
        lib.nvrtcGetPTX.argtypes = [vp, cp]
        lib.nvrtcDestroyProgram.argtypes = [ctypes.POINTER(vp)]
        return lib
    raise NotAvailable(
        "NVRTC not found (pip install nvidia-cuda-nvrtc-cu12): " + "; ".join(errors[-2:])
    )


def ptxas_path() -> str | None:
    """The ptxas binary of the nvcc wheel, else one on PATH, or None."""
    for d in _nvidia_dirs("cuda_nvcc", "bin"):
        p = os.path.join(d, "ptxas")
        if os.access(p, os.X_OK):
            return p
    return shutil.which("ptxas")


def available() -> str:
    """'' when NVRTC and ptxas are both usable here, else why not."""
    try:
        _nvrtc()
    except NotAvailable as exc:
        return str(exc)
    if ptxas_path() is None:
        return "ptxas not found (pip install nvidia-cuda-nvcc-cu12)"
    return ""


def compile_ptx(source: str, options: tuple[str, ...], arch: str = "compute_90") -> str:
    """PTX of ``source`` compiled by NVRTC with ``options`` for virtual ``arch``.

    Raises ``RuntimeError`` with NVRTC's log when the source does not compile."""
    lib = _nvrtc()
    prog = ctypes.c_void_p()
    rc = lib.nvrtcCreateProgram(
        ctypes.byref(prog), source.encode(), b"engs_physics.cu", 0, None, None
    )
    if rc != 0:
        raise RuntimeError(f"nvrtcCreateProgram failed ({rc})")
    try:
        opts = [o.encode() for o in (*options, f"--gpu-architecture={arch}")]
        arr = (ctypes.c_char_p * len(opts))(*opts)
        rc = lib.nvrtcCompileProgram(prog, len(opts), arr)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        if rc != 0:
            raise RuntimeError(f"NVRTC rejected the module ({rc}):\n{log.value.decode()}")
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(prog, ptx)
        return ptx.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


@dataclass(frozen=True)
class Usage:
    """One kernel as ptxas assembled it."""

    registers: int
    spill_stores: int  # bytes
    spill_loads: int  # bytes
    shared: int  # bytes of static shared memory
    stack: int  # bytes of stack frame


_FUNC = re.compile(r"Compiling entry function '(\w+)'")
_SPILL = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_REGS = re.compile(r"Used (\d+) registers")
_SMEM = re.compile(r"(\d+) bytes smem")


def ptxas_usage(ptx: str, arch: str = "sm_90") -> dict[str, Usage]:
    """Registers, spills and shared memory of every kernel in ``ptx`` for ``arch``."""
    exe = ptxas_path()
    if exe is None:
        raise NotAvailable("ptxas not found (pip install nvidia-cuda-nvcc-cu12)")
    with tempfile.TemporaryDirectory(prefix="engs-ptxas-") as tmp:
        src = os.path.join(tmp, "m.ptx")
        with open(src, "w", encoding="utf-8") as f:
            f.write(ptx)
        proc = subprocess.run(
            [exe, f"-arch={arch}", "-v", src, "-o", os.path.join(tmp, "m.cubin")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed:\n{proc.stderr}")
    out: dict[str, Usage] = {}
    name = None
    stack = stores = loads = 0
    for line in proc.stderr.splitlines():
        if m := _FUNC.search(line):
            name = m.group(1)
        elif (m := _SPILL.search(line)) and name:
            stack, stores, loads = (int(x) for x in m.groups())
        elif (m := _REGS.search(line)) and name:
            smem = int(s.group(1)) if (s := _SMEM.search(line)) else 0
            out[name] = Usage(int(m.group(1)), stores, loads, smem, stack)
            name = None
    return out
