"""Prepare the GPU check's installs on this machine, for a GPU machine that reaches no registry:
download the wheels of ``benchmarks/gpu-requirements.txt`` for CPython 3.12 on manylinux
x86-64, build qslm-core and qslm-unsloth from this checkout, and put them all in
``.gpu/wheels/`` (ignored by git), which ``benchmarks/gpu_device.sh`` installs there in one
step.

    python benchmarks/gpu_prepare.py        # then carry .gpu to the GPU machine

bitsandbytes ships one library per CUDA version (130 MB unpacked); only the CUDA 13 ones (the
GPU machine's torch is cu130) and the CPU one are kept, so that everything fits in what travels
(64 MiB).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]
LIMIT = 60 * 2**20  # what travels to the device is 64 MiB, the checkout included
KEEP_BNB = re.compile(r"libbitsandbytes_(cpu|cuda13\d)\.so$")


def download(requirements: Path, into: Path) -> None:
    platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *platforms,
            "--platform",
            "any",
            "-r",
            str(requirements),
            "-d",
            str(into),
        ],
        check=True,
    )


def slim_bitsandbytes(wheels: Path) -> None:
    """Rewrite the bitsandbytes wheel without the libraries of other CUDA versions and ROCm."""
    for wheel in wheels.glob("bitsandbytes-*.whl"):
        slim = wheel.with_suffix(".slim")
        with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as dst:
            dropped = {
                n
                for n in src.namelist()
                if n.endswith(".so") and "libbitsandbytes_" in n and not KEEP_BNB.search(n)
            }
            for item in src.infolist():
                if item.filename in dropped:
                    continue
                data = src.read(item)
                if item.filename.endswith(".dist-info/RECORD"):  # keep RECORD true to the files
                    lines = data.decode().splitlines()
                    data = (
                        "\n".join(ln for ln in lines if ln.split(",")[0] not in dropped) + "\n"
                    ).encode()
                dst.writestr(item, data)
        slim.replace(wheel)


def build_qslm(into: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(into),
            str(ROOT / "qslm-core"),
            str(ROOT / "qslm-unsloth"),
        ],
        check=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu" / "wheels")
    args = parser.parse_args()
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    download(ROOT / "benchmarks" / "gpu-requirements.txt", args.out)
    slim_bitsandbytes(args.out)
    build_qslm(args.out)
    wheels = sorted(args.out.glob("*.whl"))
    size = sum(w.stat().st_size for w in wheels)
    print(f"{len(wheels)} wheels, {size / 2**20:.1f} MiB in {args.out}")
    if size > LIMIT:
        print(
            f"gpu_prepare.py: over {LIMIT / 2**20:.0f} MiB: they will not travel", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
