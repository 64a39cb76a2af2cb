"""Machine record: parsers on known text, filesystem probes on a fake /proc + /sys tree, and the real machine."""

import os

import pytest

from edgeclf.runtime import machine as m

X86_CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu vme

processor\t: 1
model name\t: Intel(R) Xeon(R) Processor
"""

PI4_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
CPU implementer\t: 0x41
CPU part\t: 0xd08

Hardware\t: BCM2835
Revision\t: c03114
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""

ARM_CPUINFO = "processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0b\n"


def test_cpu_model_from_cpuinfo_variants():
    assert m.parse_cpuinfo(X86_CPUINFO) == "Intel(R) Xeon(R) Processor"
    assert m.parse_cpuinfo(PI4_CPUINFO) == "Raspberry Pi 4 Model B Rev 1.4"
    assert m.parse_cpuinfo(ARM_CPUINFO) == "Cortex-A76"
    assert m.parse_cpuinfo("processor\t: 0\nCPU part\t: 0xfff\n") == "Arm CPU part 0xfff"
    assert m.parse_cpuinfo("") is None


def test_vcgencmd_temperature():
    assert m.parse_vcgencmd_temp("temp=48.3'C\n") == 48.3
    assert m.parse_vcgencmd_temp("temp=-5.0'C") == -5.0
    assert m.parse_vcgencmd_temp("VCHI initialization failed") is None


def test_throttled_bits_are_decoded():
    ok = m.parse_throttled("throttled=0x0\n")
    assert ok == {"raw": "0x0", "now": [], "since_boot": [], "ok": True}
    bad = m.parse_throttled("throttled=0x50005")  # under-voltage now + throttled now, both also "has occurred"
    assert bad["ok"] is False
    assert bad["now"] == ["under-voltage detected", "currently throttled"]
    assert bad["since_boot"] == ["under-voltage has occurred", "throttling has occurred"]
    assert m.parse_throttled("throttled=0x80000")["since_boot"] == ["soft temperature limit has occurred"]
    assert m.parse_throttled("error") is None


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def test_pi_model_from_device_tree(tmp_path):
    assert m.read_pi_model(tmp_path) is None
    _write(tmp_path / "proc/device-tree/model", b"Raspberry Pi 5 Model B Rev 1.0\x00")
    assert m.read_pi_model(tmp_path) == "Raspberry Pi 5 Model B Rev 1.0"


def test_sysfs_temperature_prefers_the_cpu_zone(tmp_path):
    assert m.read_sysfs_temperature(tmp_path) is None
    _write(tmp_path / "sys/class/thermal/thermal_zone0/type", "acpitz\n")
    _write(tmp_path / "sys/class/thermal/thermal_zone0/temp", "27800\n")
    _write(tmp_path / "sys/class/thermal/thermal_zone1/type", "x86_pkg_temp\n")
    _write(tmp_path / "sys/class/thermal/thermal_zone1/temp", "45500\n")
    _write(tmp_path / "sys/class/thermal/thermal_zone2/type", "cpu-thermal\n")
    _write(tmp_path / "sys/class/thermal/thermal_zone2/temp", "garbage\n")  # unreadable zones are ignored
    assert m.read_sysfs_temperature(tmp_path) == (45.5, "x86_pkg_temp")
    assert m.cpu_temperature(tmp_path) == {"celsius": 45.5, "source": "sysfs:x86_pkg_temp"}


def test_os_name_and_memory_from_fake_tree(tmp_path):
    _write(tmp_path / "etc/os-release", 'NAME="Debian"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n')
    _write(tmp_path / "proc/meminfo", "MemTotal:        3884564 kB\nMemFree: 1 kB\n")
    _write(tmp_path / "proc/cpuinfo", PI4_CPUINFO)
    assert m.os_name(tmp_path) == "Debian GNU/Linux 12 (bookworm)"
    assert m.memory_total_mb(tmp_path) == pytest.approx(3793.5, abs=0.1)
    assert m.cpu_model(tmp_path) == "Raspberry Pi 4 Model B Rev 1.4"


def test_machine_slug():
    assert m.machine_slug({"pi_model": "Raspberry Pi 4 Model B Rev 1.4"}) == "raspberry-pi-4-model-b"
    assert m.machine_slug({"pi_model": None, "cpu_model": "Intel(R) Xeon(R) Processor", "arch": "x86_64",
                           "cores": 2}) == "x86_64-xeon-2core"
    assert m.machine_slug({"cpu_model": "Apple M2", "arch": "arm64", "cores": 8}) == "arm64-apple-8core"
    assert m.machine_slug({"cpu_model": "", "arch": "riscv64", "cores": 4}) == "riscv64-4core"


def test_machine_info_on_this_machine_has_real_values():
    info = m.machine_info("ai_edge_litert 2.3.0")
    assert info["cores"] == os.cpu_count()
    assert 1 <= info["usable_cores"] <= info["cores"]
    assert info["cpu_model"] and info["os"] and info["python"].count(".") == 2
    assert info["versions"]["numpy"] and info["versions"]["Pillow"]
    assert info["interpreter"] == "ai_edge_litert 2.3.0"
    for key in ("pi_model", "cpu_temperature", "throttling", "memory_mb", "load_average"):
        assert key in info  # may be None off a Pi / without sysfs, but always recorded


def test_simd_extensions_from_cpuinfo_flags(tmp_path):
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nflags\t\t: fpu avx avx2 avx512f avx512bw\n")
    assert m.cpu_simd(tmp_path) == ["avx", "avx2", "avx512f"]
    (tmp_path / "proc/cpuinfo").write_text("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 asimddp\n")
    assert m.cpu_simd(tmp_path) == ["asimd", "asimddp"]
    assert m.cpu_simd(tmp_path / "missing") == []
