"""The instance's shared-memory region: create, attach, pin, unlink.

One POSIX shared-memory object ``/engs-<instance>`` (ARCHITECTURE §2), created with
posix_ipc, mode 0600, sized with ``posix_fallocate`` (a bare ftruncate on a too-small
/dev/shm succeeds and the process dies later with SIGBUS on first touch; fallocate
fails up front with ENOSPC, which we report). The creator initialises every block and
writes the header's ``ready`` mark last; attachers check magic, layout version, layout
hash and size before they touch anything else.

Ownership: the creator (``engs up``, or whichever service starts first under docker
compose) owns the name; only the supervisor unlinks it on shutdown. Every process maps
the whole region read-write and pins its own mapping (``mlock``; on a GPU host also
``cudaHostRegister``). Pinning failures are reported, never fatal.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import mmap
import os
import re
import time
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import posix_ipc

from engs.shared.clock import monotonic_ns, wall_ns
from engs.shared.errors import (
    LayoutMismatch,
    RegionExists,
    RegionMissing,
    RegionNotReady,
    ShmError,
)
from engs.shared.layout import (
    AREA_NAME_BYTES,
    LAYOUT_VERSION,
    MAGIC,
    READY_MARK,
    SEQLOCK_BLOCKS,
    RegionFlags,
    build_layout,
    field_offset,
    layout_hash,
)

log = logging.getLogger("engs.shm")

_INSTANCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")
_HEADER_BYTES = 64
_FORMATS = {"u8": "Q", "i8": "q", "u4": "I", "i4": "i", "u2": "H", "f8": "d", "f4": "f"}
_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
_libc.munlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)


def region_name(instance: str) -> str:
    """The POSIX shm name of ``instance``; raises ValueError on a name that is unsafe."""
    if not _INSTANCE_RE.match(instance):
        raise ValueError(
            f"instance name must match {_INSTANCE_RE.pattern} "
            f"(letters, digits, '_', '.', '-'), got {instance!r}"
        )
    return f"/engs-{instance}"


class Region:
    """A mapped ENGS region. Use :meth:`create`, :meth:`attach` or :meth:`open`.

    ``view`` is a 0-d numpy array of the region dtype: ``region.view["control"]``
    is the control block, and so on. ``buf`` is a writable byte memoryview of the
    whole mapping, ``address`` its base address (for ctypes/CUDA).
    """

    def __init__(
        self, name: str, instance: str, mm: mmap.mmap, dtype: np.dtype[Any], *, created: bool
    ) -> None:
        self.name = name
        self.instance = instance
        self.dtype = dtype
        self.size = dtype.itemsize
        self.created = created
        self._mm = mm
        self.buf = memoryview(mm)
        self._u8 = np.frombuffer(mm, dtype=np.uint8, count=self.size)
        self.view: np.ndarray[Any, Any] = self._u8.view(dtype).reshape(())
        self.address: int = self._u8.ctypes.data
        self.pin_flags = RegionFlags(0)
        self.pin_errors: list[str] = []
        self._cuda_registered = False

    # -- construction ------------------------------------------------------

    @classmethod
    def create(
        cls,
        instance: str,
        max_areas: int,
        *,
        area_names: Sequence[str] = (),
        lock_memory: bool = True,
    ) -> Region:
        """Create and initialise the region; RegionExists if the name is taken.

        ``area_names`` (at most ``max_areas``, ASCII, < 32 bytes each) label the
        per-area rows for readers that have no configuration (``engs status``)."""
        name = region_name(instance)
        if len(area_names) > max_areas:
            raise ValueError(f"{len(area_names)} area names exceed max_areas={max_areas}")
        encoded = [n.encode("ascii") for n in area_names]
        if any(len(n) >= AREA_NAME_BYTES for n in encoded):
            raise ValueError(f"area names must be shorter than {AREA_NAME_BYTES} bytes")
        dtype = build_layout(max_areas)
        try:
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=0)
        except posix_ipc.ExistentialError as exc:
            raise RegionExists(f"shared-memory region {name} already exists") from exc
        try:
            os.fchmod(shm.fd, 0o600)  # shm_open's mode is masked by umask; be exact
            try:
                os.posix_fallocate(shm.fd, 0, dtype.itemsize)
            except OSError as exc:
                raise ShmError(
                    f"cannot allocate {dtype.itemsize} bytes for {name} in /dev/shm "
                    f"({os.strerror(exc.errno or 0)}); under docker raise shm_size"
                ) from exc
            mm = mmap.mmap(shm.fd, dtype.itemsize)
        except BaseException:
            shm.close_fd()
            posix_ipc.unlink_shared_memory(name)
            raise
        shm.close_fd()
        region = cls(name, instance, mm, dtype, created=True)
        region._initialise(max_areas, encoded)
        if lock_memory:
            region.lock_memory()
        return region

    @classmethod
    def attach(
        cls,
        instance: str,
        *,
        max_areas: int | None = None,
        lock_memory: bool = True,
        ready_timeout_s: float = 2.0,
    ) -> Region:
        """Map an existing region after checking its header.

        ``max_areas``: if given, the region must have been created for exactly that
        many area rows (LayoutMismatch otherwise); if None, the region's own value is
        adopted (what ``engs status`` does).
        """
        name = region_name(instance)
        deadline = monotonic_ns() + int(ready_timeout_s * 1e9)
        while True:
            try:
                shm = posix_ipc.SharedMemory(name, 0)
            except posix_ipc.ExistentialError as exc:
                raise RegionMissing(
                    f"no shared-memory region {name}: nothing is running for instance "
                    f"{instance!r} (start it with `engs up --instance {instance}`)"
                ) from exc
            try:
                size = os.fstat(shm.fd).st_size
                # A creator sizes the object right after creating it: a short object
                # may be one that is still being created. Wait as for the ready mark.
                if size >= _HEADER_BYTES:
                    mm = mmap.mmap(shm.fd, size)
                    break
            finally:
                shm.close_fd()
            if monotonic_ns() > deadline:
                raise LayoutMismatch(
                    f"{name} is {size} bytes, smaller than an ENGS header: not an ENGS region"
                )
            time.sleep(0.002)
        try:
            dtype = cls._check_header(name, mm, size, max_areas, ready_timeout_s)
        except BaseException:
            with contextlib.suppress(BufferError):
                mm.close()
            raise
        region = cls(name, instance, mm, dtype, created=False)
        if lock_memory:
            region.lock_memory()
        return region

    @classmethod
    def open(
        cls,
        instance: str,
        max_areas: int,
        *,
        area_names: Sequence[str] = (),
        lock_memory: bool = True,
    ) -> Region:
        """Attach if the region exists, else create it (race-safe via O_EXCL)."""
        try:
            return cls.create(instance, max_areas, area_names=area_names, lock_memory=lock_memory)
        except RegionExists:
            return cls.attach(instance, max_areas=max_areas, lock_memory=lock_memory)

    @staticmethod
    def _check_header(
        name: str, mm: mmap.mmap, size: int, max_areas: int | None, ready_timeout_s: float
    ) -> np.dtype[Any]:
        hdr = build_layout(1).fields["header"][0]  # type: ignore[index]
        deadline = monotonic_ns() + int(ready_timeout_s * 1e9)
        while True:
            h = np.frombuffer(mm, dtype=hdr, count=1).copy()[0]  # no export of mm
            if int(h["magic"]) == 0 and monotonic_ns() <= deadline:
                time.sleep(0.002)  # sized but not yet initialised by its creator
                continue
            if int(h["magic"]) != MAGIC:
                raise LayoutMismatch(
                    f"{name}: bad magic {int(h['magic']):#018x}, expected {MAGIC:#018x}: "
                    f"not an ENGS region (remove /dev/shm{name} if it is left over)"
                )
            if int(h["ready"]) == READY_MARK:
                break
            if monotonic_ns() > deadline:
                raise RegionNotReady(
                    f"{name}: creator pid {int(h['creator_pid'])} never finished "
                    f"initialising it within {ready_timeout_s} s"
                )
            time.sleep(0.005)
        version = int(h["layout_version"])
        if version != LAYOUT_VERSION:
            raise LayoutMismatch(
                f"{name}: layout version {version}, this build expects {LAYOUT_VERSION}; "
                f"stop the instance and remove /dev/shm{name}"
            )
        found_areas = int(h["max_areas"])
        if max_areas is not None and found_areas != max_areas:
            raise LayoutMismatch(
                f"{name}: region was created for max_areas={found_areas}, "
                f"this process is configured for max_areas={max_areas}"
            )
        dtype = build_layout(found_areas)
        want_hash = layout_hash(dtype)
        if int(h["layout_hash"]) != want_hash:
            raise LayoutMismatch(
                f"{name}: layout hash {int(h['layout_hash']):#018x}, this build expects "
                f"{want_hash:#018x} (same version, different build): stop the instance "
                f"and remove /dev/shm{name}"
            )
        if int(h["total_size"]) != dtype.itemsize or size < dtype.itemsize:
            raise LayoutMismatch(
                f"{name}: header says {int(h['total_size'])} bytes, file has {size}, "
                f"layout needs {dtype.itemsize}"
            )
        return dtype

    def _initialise(self, max_areas: int, area_names: list[bytes]) -> None:
        v = self.view
        v["meta"]["n_areas"] = len(area_names)
        for i, n in enumerate(area_names):
            v["meta"]["area_names"][i] = n
        for block in SEQLOCK_BLOCKS:
            self._init_seqlock(block)
        h = v["header"]
        h["magic"] = MAGIC
        h["layout_version"] = LAYOUT_VERSION
        h["max_areas"] = max_areas
        h["total_size"] = self.size
        h["layout_hash"] = layout_hash(self.dtype)
        h["creator_pid"] = os.getpid()
        h["created_wall_ns"] = wall_ns()
        h["created_ns"] = monotonic_ns()
        h["ready"] = READY_MARK  # last: attachers wait for it

    def _init_seqlock(self, block: str) -> None:
        """Both slots of a fresh seqlock hold a zero record with a valid CRC."""
        blk = self.block(block)
        slot_dt = blk.dtype["slots"].base
        blk["slot_size"] = slot_dt.itemsize
        blk["slots"]["crc"] = zlib.crc32(bytes(slot_dt["rec"].itemsize))

    # -- access --------------------------------------------------------------

    def block(self, path: str) -> np.ndarray[Any, Any]:
        """A numpy view of a dotted block path, e.g. ``"interrupt.emergency"``."""
        v = self.view
        for part in path.split("."):
            v = v[part]
        return v

    @property
    def area_names(self) -> list[str]:
        """The instance's area names, as the creator recorded them."""
        meta = self.view["meta"]
        return [bytes(n).decode("ascii") for n in meta["area_names"][: int(meta["n_areas"])]]

    def offset(self, path: str) -> int:
        return field_offset(self.dtype, path)

    def scalar(self, path: str) -> memoryview:
        """A one-element typed memoryview of the scalar field at ``path``.

        ``path`` is dotted; ``name[i]`` selects element ``i`` of an array field, e.g.
        ``"heartbeats[1].last_beat_ns"``. ``view[0]`` is then one aligned load or store
        of the field's width (single-copy atomic for naturally aligned fields).
        """
        off, dt = 0, self.dtype
        for part in path.split("."):
            name, _, idx = part.partition("[")
            if dt.fields is None or name not in dt.fields:
                raise KeyError(f"no field {name!r} in {path!r}")
            sub, o = dt.fields[name][:2]
            off += o
            if idx:
                i = int(idx.rstrip("]"))
                if sub.shape == () or not 0 <= i < sub.shape[0]:
                    raise IndexError(f"{part!r} out of range in {path!r}")
                off += i * sub.base.itemsize * int(np.prod(sub.shape[1:], dtype=np.int64))
                sub = sub.base
            dt = sub
        if dt.fields is not None or dt.shape != ():
            raise TypeError(f"{path!r} is not a scalar field ({dt})")
        fmt = _FORMATS[dt.str.lstrip("<|")]
        return self.buf[off : off + dt.itemsize].cast(fmt)  # type: ignore[call-overload]

    # -- pinning -------------------------------------------------------------

    def lock_memory(self) -> bool:
        """mlock this process's mapping. Failure is reported (flags, log), not fatal."""
        if _libc.mlock(ctypes.c_void_p(self.address), ctypes.c_size_t(self.size)) == 0:
            self.pin_flags |= RegionFlags.MLOCKED
            return True
        err = ctypes.get_errno()
        hint = (
            " (raise `ulimit -l` / the memlock ulimit)"
            if err in (errno.ENOMEM, errno.EPERM)
            else ""
        )
        msg = f"mlock of {self.name} ({self.size} bytes) failed: {os.strerror(err)}{hint}"
        self.pin_flags |= RegionFlags.MLOCK_FAILED
        self.pin_errors.append(msg)
        log.warning("%s", msg)
        return False

    def register_with_cuda(self) -> bool:
        """Register the mapping with CUDA (cudaHostRegister, portable + mapped) so the
        GPU can DMA from it without a staging copy. Called by the physics only when
        the CuPy backend is active. Failure is reported, not fatal."""
        try:
            import cupy  # noqa: PLC0415 - cupy is imported only on the GPU backend

            cupy.cuda.runtime.hostRegister(self.address, self.size, 0x01 | 0x02)
        except Exception as exc:
            msg = f"cudaHostRegister of {self.name} failed: {type(exc).__name__}: {exc}"
            self.pin_flags |= RegionFlags.CUDA_REGISTER_FAILED
            self.pin_errors.append(msg)
            log.warning("%s", msg)
            return False
        self._cuda_registered = True
        self.pin_flags |= RegionFlags.CUDA_REGISTERED
        return True

    # -- teardown ------------------------------------------------------------

    def close(self) -> None:
        """Unmap. Views handed out (readers, writers) keep the mapping alive until
        they are dropped; closing never invalidates memory another object still uses."""
        if self._cuda_registered:
            with contextlib.suppress(Exception):
                import cupy  # noqa: PLC0415

                cupy.cuda.runtime.hostUnregister(self.address)
            self._cuda_registered = False
        if self.pin_flags & RegionFlags.MLOCKED:
            _libc.munlock(ctypes.c_void_p(self.address), ctypes.c_size_t(self.size))
            self.pin_flags &= ~RegionFlags.MLOCKED
        del self.view
        del self._u8
        with contextlib.suppress(BufferError):
            self.buf.release()
            self._mm.close()

    def unlink(self) -> None:
        """Remove the name; mappings stay valid until closed. Idempotent."""
        unlink(self.instance)

    def __enter__(self) -> Region:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_for_service(
    instance: str, max_areas: int, area_names: Sequence[str], lock_memory: bool
) -> Region:
    """What every service does at start: open (attach, or create when it is the first
    to start, as under docker compose) and report pinning failures in the log."""
    region = Region.open(instance, max_areas, area_names=area_names, lock_memory=lock_memory)
    for err in region.pin_errors:
        log.warning("%s", err)
    return region


def unlink(instance: str) -> bool:
    """Unlink ``/engs-<instance>``; True if it existed."""
    try:
        posix_ipc.unlink_shared_memory(region_name(instance))
    except posix_ipc.ExistentialError:
        return False
    return True
