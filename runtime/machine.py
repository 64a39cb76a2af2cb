"""What machine a benchmark ran on: a latency number without its CPU, temperature and throttling state is noise.

Everything is read from what the OS already exposes (``/proc``, ``/sys``, the device tree, Raspberry Pi's ``vcgencmd``)
and every probe is optional: a field that cannot be read is ``None``, never an error. Parsers are separate pure
functions so they can be tested on known text. ``root`` lets tests point the filesystem probes at a fake tree.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import time
from importlib import metadata as importlib_metadata
from pathlib import Path

# Bits of `vcgencmd get_throttled` (Raspberry Pi firmware documentation).
THROTTLE_BITS = {
    0: "under-voltage detected",
    1: "arm frequency capped",
    2: "currently throttled",
    3: "soft temperature limit active",
    16: "under-voltage has occurred",
    17: "arm frequency capping has occurred",
    18: "throttling has occurred",
    19: "soft temperature limit has occurred",
}
# sysfs thermal zone types that measure the CPU/SoC, best first.
CPU_ZONE_TYPES = ("cpu-thermal", "cpu_thermal", "soc_thermal", "x86_pkg_temp", "coretemp", "acpitz")


def parse_cpuinfo(text: str) -> str | None:
    """CPU model from /proc/cpuinfo: x86 "model name", Arm "Model"/"Hardware", or the Arm CPU part number."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields and value.strip():
            fields[key.strip()] = value.strip()
    for key in ("model name", "Model", "Hardware", "cpu model", "Processor"):
        if key in fields:
            return fields[key]
    part = fields.get("CPU part")
    if part:
        return ARM_PARTS.get(part.lower(), f"Arm CPU part {part}")
    return None


# The Arm cores found in Raspberry Pis (and a few others), by /proc/cpuinfo "CPU part".
ARM_PARTS = {"0xb76": "ARM1176", "0xc07": "Cortex-A7", "0xd03": "Cortex-A53", "0xd08": "Cortex-A72",
             "0xd0b": "Cortex-A76", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57"}


def parse_vcgencmd_temp(text: str) -> float | None:
    """``temp=48.3'C`` → 48.3."""
    m = re.search(r"temp=([-\d.]+)", text or "")
    return float(m.group(1)) if m else None


def parse_throttled(text: str) -> dict | None:
    """``throttled=0x50005`` → {"raw": "0x50005", "now": [...], "since_boot": [...], "ok": False}."""
    m = re.search(r"throttled=(0x[0-9a-fA-F]+|\d+)", text or "")
    if not m:
        return None
    value = int(m.group(1), 0)
    flags = [name for bit, name in THROTTLE_BITS.items() if value & (1 << bit)]
    return {"raw": hex(value), "now": [f for f in flags if "occurred" not in f],
            "since_boot": [f for f in flags if "occurred" in f], "ok": value == 0}


def read_pi_model(root: Path = Path("/")) -> str | None:
    """The board name from the device tree, e.g. "Raspberry Pi 4 Model B Rev 1.4" (None off a Pi/Arm board)."""
    for rel in ("proc/device-tree/model", "sys/firmware/devicetree/base/model"):
        try:
            return (root / rel).read_bytes().rstrip(b"\x00").decode("utf-8", "replace").strip() or None
        except OSError:
            continue
    return None


def read_sysfs_temperature(root: Path = Path("/")) -> tuple[float, str] | None:
    """(°C, zone type) from /sys/class/thermal, preferring zones that measure the CPU."""
    zones = []
    for zone in sorted((root / "sys/class/thermal").glob("thermal_zone*")):
        try:
            kind = (zone / "type").read_text().strip()
            millideg = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue
        rank = CPU_ZONE_TYPES.index(kind) if kind in CPU_ZONE_TYPES else len(CPU_ZONE_TYPES)
        zones.append((rank, millideg / 1000.0, kind))
    if not zones:
        return None
    _, temp, kind = min(zones, key=lambda z: z[0])
    return temp, kind


def _vcgencmd(*args: str) -> str | None:
    exe = shutil.which("vcgencmd")
    if not exe:
        return None
    try:
        return subprocess.run([exe, *args], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_temperature(root: Path = Path("/")) -> dict | None:
    """{"celsius": ..., "source": "vcgencmd" | "sysfs:<zone>"} or None."""
    temp = parse_vcgencmd_temp(_vcgencmd("measure_temp") or "") if root == Path("/") else None
    if temp is not None:
        return {"celsius": temp, "source": "vcgencmd"}
    found = read_sysfs_temperature(root)
    if found:
        return {"celsius": round(found[0], 1), "source": f"sysfs:{found[1]}"}
    return None


def throttling() -> dict | None:
    return parse_throttled(_vcgencmd("get_throttled") or "")


def os_name(root: Path = Path("/")) -> str:
    """PRETTY_NAME from os-release (e.g. "Debian GNU/Linux 12 (bookworm)"), else platform's description."""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        try:
            for line in (root / rel).read_text().splitlines():
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
        except OSError:
            continue
    return platform.platform(terse=True)


def memory_total_mb(root: Path = Path("/")) -> float | None:
    try:
        for line in (root / "proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil  # optional

        return round(psutil.virtual_memory().total / 2**20, 1)
    except ImportError:
        return None


def package_version(dist: str) -> str | None:
    try:
        return importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return None


def package_versions(dists) -> dict[str, str]:
    """{distribution: version} of those of ``dists`` that are installed (what artifacts record as provenance)."""
    found = {dist: package_version(dist) for dist in dists}
    return {dist: v for dist, v in found.items() if v is not None}


def cpu_model(root: Path = Path("/")) -> str:
    try:
        found = parse_cpuinfo((root / "proc/cpuinfo").read_text(errors="replace"))
        if found:
            return found
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


SIMD = ("avx", "avx2", "avx512f", "neon", "asimd", "asimddp", "sve")


def cpu_simd(root: Path = Path("/")) -> list[str]:
    """The vector extensions of :data:`SIMD` the CPU reports: TensorFlow's and XNNPACK's speed follows them more
    than the model name (two "AMD EPYC" VMs, without and with AVX2/AVX-512, trained 3-5x apart)."""
    try:
        text = (root / "proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return []
    flags = {f for line in text.splitlines() if line.split(":")[0].strip() in ("flags", "Features")
             for f in line.partition(":")[2].split()}
    return [f for f in SIMD if f in flags]


def usable_cores() -> int:
    """CPUs this process may run on (affinity/cgroup-aware where the OS says), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def machine_info(interpreter: str | None = None) -> dict:
    """Everything about this machine a benchmark result should carry."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        load = None
    return {
        "hostname": platform.node(),
        "cpu_model": cpu_model(),
        "simd": cpu_simd(),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "usable_cores": usable_cores(),
        "pi_model": read_pi_model(),
        "memory_mb": memory_total_mb(),
        "cpu_temperature": cpu_temperature(),
        "throttling": throttling(),
        "load_average": load,
        "os": os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {
            "edgeclf": package_version("edgeclf"),
            "numpy": package_version("numpy"),
            "Pillow": package_version("Pillow"),
            "ai-edge-litert": package_version("ai-edge-litert"),
            "tflite-runtime": package_version("tflite-runtime"),
            "psutil": package_version("psutil"),
        },
        "interpreter": interpreter,
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def machine_slug(info: dict) -> str:
    """A short file-name-safe machine name: the Pi model on a Pi ("raspberry-pi-4-model-b"), else
    "<arch>-<cpu family>-<N>core" (e.g. "x86_64-xeon-2core")."""
    pi = info.get("pi_model")
    if pi:
        name = re.sub(r"\s+Rev\s+[\d.]+$", "", pi)
    else:
        cpu = (info.get("cpu_model") or "").lower()
        family = next((f for f in ("xeon", "epyc", "ryzen", "core-i9", "core-i7", "core-i5", "core-i3", "apple",
                                   "cortex-a76", "cortex-a72", "cortex-a53", "graviton", "neoverse")
                       if f.replace("-", " ") in cpu or f in cpu), None)
        parts = [info.get("arch") or "cpu"] + ([family] if family else []) + [f"{info.get('cores') or 0}core"]
        name = "-".join(parts)
    return re.sub(r"[^a-z0-9_]+", "-", name.lower()).strip("-") or "machine"

