"""Device and precision: CUDA with bf16 when present, bf16 on CPUs with bf16 units, else fp32."""

from __future__ import annotations

from functools import lru_cache

import torch

from taskkit.errors import TaskkitError

PRECISIONS = ("auto", "fp32", "bf16")


@lru_cache(maxsize=1)
def bf16_supported() -> bool:
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    cpu = getattr(torch, "cpu", None)
    # AVX512-BF16 or AMX: bf16 matmuls are native and faster than fp32
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(cpu, name, lambda: False)() for name in checks)


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for this machine; validates the name."""
    if precision not in PRECISIONS:
        raise TaskkitError(f"unknown precision {precision!r} (choose from {', '.join(PRECISIONS)})")
    if precision == "auto":
        return "bf16" if bf16_supported() else "fp32"
    if precision == "bf16" and not bf16_supported():
        raise TaskkitError("precision bf16 requested but this machine has no bf16 support; use fp32 or auto")
    return precision


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(device: torch.device, precision: str) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
