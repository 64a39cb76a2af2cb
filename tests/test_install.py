"""The runtime-only install: build the wheel, install it into a fresh virtual environment WITHOUT the train extra,
prove TensorFlow is not there, and predict. Also on numpy 1.x (the runtime must not use numpy-2-only APIs).

Needs PyPI (pip downloads the runtime dependencies), hence ``slow``. The same code measures the install for
benchmarks/results (installed size, import time, time to first prediction)::

    .venv/bin/python -m tests.test_install --record        # writes benchmarks/results/runtime-install-<machine>-<date>.*
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.test_runtime_models import tiny_models  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[1]
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", ".venvs", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", "runs", "*.pyc")
TF_DISTRIBUTIONS = {"tensorflow", "tensorflow-cpu", "tf-nightly", "keras", "tf-keras", "tensorflow-io-gcs-filesystem",
                    "tensorboard", "jax", "torch"}


def sh(*cmd, cwd=None, env=None, timeout=900) -> subprocess.CompletedProcess:
    """Run a command; by default from a neutral folder, so `python -c` cannot import the checkout's own edgeclf/
    (the current directory comes first on sys.path) instead of the installed one."""
    cwd = cwd or Path(tempfile.gettempdir())
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def build_wheel(work: Path) -> Path:
    """Build the wheel from a clean copy of the checkout (so build/ and egg-info never land in the work tree)."""
    src = work / "src"
    shutil.copytree(REPO, src, ignore=COPY_IGNORE)
    sh(sys.executable, "-m", "build", "--wheel", "--outdir", work / "dist", cwd=src)
    (wheel,) = (work / "dist").glob("edgeclf-*.whl")
    return wheel


def fresh_venv(path: Path, wheel: Path, *extra: str) -> Path:
    """A new venv (no system site-packages) with ``pip install WHEEL [extra requirements]``; returns its python."""
    sh(sys.executable, "-m", "venv", path)
    python = path / "bin" / "python"
    sh(python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", wheel, *extra)
    return python


def installed(python: Path) -> dict[str, str]:
    out = sh(python, "-m", "pip", "list", "--format=json", "--disable-pip-version-check").stdout
    return {p["name"].lower(): p["version"] for p in json.loads(out)}


def site_packages(python: Path) -> Path:
    return Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())


def du_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            p = Path(root) / name
            if not p.is_symlink():
                total += p.stat().st_size
    return total / 1e6


def check_runtime_env(python: Path, model: Path, image: Path, expected_label: str) -> dict:
    """The assertions shared by the test and the benchmark: no TensorFlow, the import does not load it, predict works."""
    packages = installed(python)
    assert not TF_DISTRIBUTIONS & set(packages), f"the runtime install pulled in {TF_DISTRIBUTIONS & set(packages)}"
    assert "edgeclf" in packages and ("ai-edge-litert" in packages or "tflite-runtime" in packages)
    probe = subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True, text=True,
                           cwd=tempfile.gettempdir())
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr
    code = ("import sys, json; from edgeclf.runtime import Classifier; c = Classifier(sys.argv[1]); "
            "p = c.classify(sys.argv[2], top_k=1)[0]; "
            "print(json.dumps({'label': p.label, 'backend': c.backend, 'tf': 'tensorflow' in sys.modules}))")
    got = json.loads(sh(python, "-c", code, model, image).stdout.strip().splitlines()[-1])
    assert got["label"] == expected_label and got["tf"] is False
    bindir = python.parent
    cli = sh(bindir / "edgeclf", "predict", model, image, "--json")
    assert json.loads(cli.stdout.splitlines()[0])["label"] == expected_label
    page = sh(python, "-c", "from importlib import resources; "
                            "print(len(resources.files('edgeclf.runtime').joinpath('camera.html').read_bytes()))")
    assert int(page.stdout) > 500  # the --serve page ships in the wheel
    return {"packages": packages, "backend": got["backend"]}


def _median_seconds(cmd, runs: int = 7) -> dict:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        sh(*cmd)
        times.append(time.perf_counter() - start)
    return {"median_s": round(statistics.median(times), 3), "min_s": round(min(times), 3), "runs": runs}


def measure(python: Path, model: Path, image: Path) -> dict:
    """Size, import times and time to first prediction in the runtime-only venv (cold process, warm file cache)."""
    sp = site_packages(python)
    sizes = {}
    for entry in sp.iterdir():
        if entry.is_dir() and not entry.name.endswith((".dist-info", "__pycache__")):
            sizes[entry.name] = round(du_mb(entry), 2)
    baseline = sum(v for k, v in sizes.items() if k in ("pip", "setuptools", "_distutils_hack", "pkg_resources"))
    import_code = ("import time; t = time.perf_counter(); import {mod}; "
                   "print((time.perf_counter() - t) * 1000)")

    def in_process_ms(module: str) -> float:
        values = [float(sh(python, "-c", import_code.format(mod=module)).stdout) for _ in range(7)]
        return round(statistics.median(values), 1)

    first_code = ("import time; t = time.perf_counter(); from edgeclf.runtime import Classifier; "
                  "c = Classifier({m!r}); c.classify({i!r}); print((time.perf_counter() - t) * 1000)")
    first = [float(sh(python, "-c", first_code.format(m=str(model), i=str(image))).stdout) for _ in range(7)]
    return {
        "site_packages_mb": round(du_mb(sp), 1),
        "site_packages_without_pip_mb": round(du_mb(sp) - baseline, 1),
        "largest_packages_mb": dict(sorted(sizes.items(), key=lambda kv: -kv[1])[:8]),
        "import_edgeclf_runtime_ms": in_process_ms("edgeclf.runtime"),
        "import_classifier_ms": in_process_ms("edgeclf.runtime.classifier"),
        "first_prediction_in_process_ms": round(statistics.median(first), 1),
        "predict_cli_wall": _median_seconds([python.parent / "edgeclf", "predict", model, image]),
        "python_startup_wall": _median_seconds([python, "-c", "pass"]),
    }


def tiny_labelled_model(tmp: Path, models: Path | None = None) -> tuple[Path, Path, str]:
    """A real converted model with embedded labels (from the runtime tests' builder) and an image of class 'blue'."""
    from tests.fixtures.images import synthetic_image
    from tests.test_runtime_models import _build, model_copy

    if models is None:
        models = tmp / "models"
        models.mkdir()
        _build(models)
    model = model_copy(models, "int8", tmp / "m")
    synthetic_image(1, 4242).save(tmp / "blue.png")
    return model, tmp / "blue.png", "blue"


@pytest.mark.slow
def test_runtime_wheel_installs_without_tensorflow_and_predicts(tmp_path, tiny_models):
    pytest.importorskip("build")
    model, image, label = tiny_labelled_model(tmp_path, tiny_models)
    wheel = build_wheel(tmp_path)
    python = fresh_venv(tmp_path / "venv", wheel)
    check_runtime_env(python, model, image, label)


@pytest.mark.slow
def test_runtime_uses_tflite_runtime_where_ai_edge_litert_is_missing(tmp_path, tiny_models):
    """What 32-bit Raspberry Pi OS gets: the standalone tflite-runtime (2.14, built for numpy 1.x), no ai-edge-litert."""
    pytest.importorskip("build")
    model, image, label = tiny_labelled_model(tmp_path, tiny_models)
    wheel = build_wheel(tmp_path)
    sh(sys.executable, "-m", "venv", tmp_path / "venv-tflite")
    python = tmp_path / "venv-tflite" / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    sh(*pip, "--no-deps", wheel)  # the wheel's markers pick ai-edge-litert on x86_64; install the Pi's set by hand
    sh(*pip, "tflite-runtime==2.14.0", "numpy<2", "Pillow", "click", "tqdm", "flatbuffers")
    info = check_runtime_env(python, model, image, label)
    assert "ai-edge-litert" not in info["packages"]
    assert info["backend"] == "tflite_runtime 2.14.0"


@pytest.mark.slow
def test_runtime_works_with_numpy_1(tmp_path, tiny_models):
    pytest.importorskip("build")
    model, image, label = tiny_labelled_model(tmp_path, tiny_models)
    wheel = build_wheel(tmp_path)
    python = fresh_venv(tmp_path / "venv-np1", wheel, "numpy<2")
    info = check_runtime_env(python, model, image, label)
    assert info["packages"]["numpy"].startswith("1.")


def record(model: Path | None = None, image: Path | None = None, note: str = "") -> Path:
    """Measure and write benchmarks/results/runtime-install-<machine>-<date>.{json,md}."""
    from edgeclf.fsutil import atomic_write_json, atomic_write_text

    with tempfile.TemporaryDirectory(prefix="edgeclf-install-") as tmp:
        result, slug = _measure_install(Path(tmp), model, image, note)
    date = time.strftime("%Y-%m-%d", time.gmtime())
    out = REPO / "benchmarks" / "results" / f"runtime-install-{slug}-{date}"
    atomic_write_json(out.with_suffix(".json"), result)
    atomic_write_text(out.with_suffix(".md"), _install_markdown(result, slug, date))
    return out


def _measure_install(tmp: Path, model: Path | None, image: Path | None, note: str) -> tuple[dict, str]:
    """Build the wheel, install it into a fresh venv and time it there; (result, machine slug)."""
    import platform

    from edgeclf.runtime import Classifier

    label = None
    if model is None:
        model, image, label = tiny_labelled_model(tmp)
    wheel = build_wheel(tmp)
    start = time.perf_counter()
    python = fresh_venv(tmp / "venv", wheel)
    install_s = time.perf_counter() - start
    clf = Classifier(model)
    env = check_runtime_env(python, model, image, label or clf.classify(image)[0].label)
    numbers = measure(python, model, image)
    try:
        from edgeclf.runtime.machine import machine_info, machine_slug

        machine = machine_info(env["backend"])
        slug = machine_slug(machine)
    except ImportError:
        machine = {"arch": platform.machine(), "python": platform.python_version()}
        slug = platform.machine()
    return {
        "what": "runtime-only install: pip install edgeclf-<version>.whl into a fresh venv (no train extra)",
        "machine": machine,
        "wheel": wheel.name,
        "model": {"file": model.name, "bytes": model.stat().st_size, "input": list(clf.input_size),
                  "input_dtype": str(clf.input_dtype)},
        "image": image.name,
        "note": note,
        "install_seconds_incl_download": round(install_s, 1),
        "tensorflow_installed": False,
        "packages": env["packages"],
        "backend": env["backend"],
        **numbers,
    }, slug


def _install_markdown(result: dict, slug: str, date: str) -> str:
    from edgeclf.console import format_table

    machine, model, note = result["machine"], result["model"], result["note"]
    rows = [
        ["installed size (site-packages, all)", f"{result['site_packages_mb']} MB"],
        ["installed size without pip/setuptools", f"{result['site_packages_without_pip_mb']} MB"],
        ["TensorFlow installed", "no (import tensorflow fails)"],
        ["`import edgeclf.runtime` (median of 7, in-process)", f"{result['import_edgeclf_runtime_ms']} ms"],
        ["`import edgeclf.runtime.classifier` (numpy, Pillow, ...)", f"{result['import_classifier_ms']} ms"],
        ["first prediction: import + Classifier() + classify() (in-process)",
         f"{result['first_prediction_in_process_ms']} ms"],
        ["`edgeclf predict MODEL IMAGE` wall clock (median of 7)", f"{result['predict_cli_wall']['median_s']} s"],
        ["bare `python -c pass` wall clock, for reference", f"{result['python_startup_wall']['median_s']} s"],
    ]
    biggest = "\n".join(f"| {k} | {v} |" for k, v in result["largest_packages_mb"].items())
    return (f"# Runtime-only install — {slug}, {date}\n\n"
            f"Produced by `python -m tests.test_install --record` (see tests/test_install.py): the wheel "
            f"`{result['wheel']}` installed with `pip install` into a fresh virtual environment without the `train` "
            f"extra, {machine.get('cpu_model', '')} ({machine.get('cores', '?')} cores), Python "
            f"{machine.get('python', '')}, backend {result['backend']}. Model: `{model['file']}` "
            f"({model['bytes']} bytes, input {model['input'][0]}x{model['input'][1]} "
            f"{model['input_dtype']}){'; ' + note if note else ''}. Timings are medians of 7 fresh processes with a "
            f"warm file cache; load average at the end: {machine.get('load_average')} (other work shared the machine)."
            "\n\n"
            + format_table(rows, ["measure", "value"], align="lr")
            + "\n\nLargest installed packages (MB):\n\n| package | MB |\n|---|---:|\n" + biggest
            + f"\n\nInstalled distributions: {', '.join(f'{k} {v}' for k, v in sorted(result['packages'].items()))}\n")


if __name__ == "__main__":  # pragma: no cover - measurement entry point
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--record", action="store_true", help="measure and write benchmarks/results")
    parser.add_argument("--model", type=Path, help="a .tflite with embedded labels (default: a tiny test model)")
    parser.add_argument("--image", type=Path, help="an image to classify (with --model)")
    parser.add_argument("--note", default="", help="what the model is, for the results file")
    args = parser.parse_args()
    if args.record:
        print(record(args.model, args.image, args.note))
