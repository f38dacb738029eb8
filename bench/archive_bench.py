"""Model packaging benchmark: our deterministic packer against `tar czf`, side by side in one run.

Generates a model-like folder (float32 weight shards that compress like real weights, JSON/text that
compresses well, many small files), warms the page cache, then times, alternating so neither side gets
a warmer cache or a quieter machine:

  - `tar czf` (GNU tar piping into gzip -6, the bar to beat),
  - our packer with an empty cache (a first synth),
  - our packer again on the unchanged folder (a cache hit: what every later synth costs).

Usage: python bench/archive_bench.py [--size 256M] [--dir EXISTING_MODEL_DIR] [--rounds 2] [--keep]
Sizes accept K/M/G suffixes. The default runs in well under two minutes on two cores.
Both processes share the machine: compare the ratio measured in one run, not absolute numbers across runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np


def _load_archive_module() -> ModuleType:
    # The packer is plain standard library; loading its file directly keeps the CDK (and its Node
    # process) out of the measurement run.
    path = Path(__file__).resolve().parents[1] / "sagemaker_constructs" / "_private" / "archive.py"
    spec = importlib.util.spec_from_file_location("model_archive", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


archive = _load_archive_module()

_UNITS = {"K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str) -> int:
    text = text.strip().upper().removesuffix("B")
    if text and text[-1] in _UNITS:
        return int(float(text[:-1]) * _UNITS[text[-1]])
    return int(text)


def generate(root: Path, size: int) -> None:
    """About `size` bytes: 85% weight shards, 10% JSON/text, 5% small files. Deterministic (seeded)."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    weights = int(size * 0.85) // 4 * 4  # whole float32 values
    shard = 256 * 1024**2
    index = 0
    while weights > 0:
        n = min(shard, weights)
        # Normally distributed float32: gzip saves ~7-10% on it, like on real weights.
        data = rng.standard_normal(n // 4, dtype=np.float32).tobytes()
        (root / f"model-{index:05d}.safetensors").write_bytes(data)
        weights -= len(data)
        index += 1
    vocab = {f"token_{i}": i for i in range(max(1, int(size * 0.10) // 24))}
    (root / "tokenizer.json").write_text(json.dumps(vocab))
    code = root / "code"
    code.mkdir(exist_ok=True)
    small = max(1, int(size * 0.05) // (16 * 1024))
    for i in range(small):
        block = rng.integers(0, 64, 16 * 1024, dtype=np.uint8).tobytes()
        (code / f"part_{i:05d}.bin").write_bytes(block)
    (code / "inference.py").write_text("def model_fn(model_dir):\n    return model_dir\n" * 50)


def folder_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def warm(root: Path) -> None:
    subprocess.run(["tar", "cf", "/dev/null", "-C", str(root), "."], check=True)


def time_tar(root: Path, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(["tar", "czf", str(out), "-C", str(root), "."], check=True)
    return time.perf_counter() - start


def time_ours(root: Path, cache: Path) -> tuple[float, Any]:
    start = time.perf_counter()
    result = archive.pack_directory(root, cache=cache)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="256M", help="size of the generated folder (default 256M)")
    parser.add_argument("--dir", type=Path, help="benchmark an existing folder instead of generating one")
    parser.add_argument("--rounds", type=int, default=2, help="timed rounds per contender (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="archive-bench-"))
    try:
        if args.dir:
            source = args.dir
        else:
            source = scratch / "model"
            print(f"generating {args.size} in {source} ...", flush=True)
            generate(source, parse_size(args.size))
        total = folder_size(source)
        warm(source)

        tar_times: list[float] = []
        our_times: list[float] = []
        tar_out = scratch / "tar.tar.gz"
        result: Any = None
        for round_ in range(args.rounds):
            tar_times.append(time_tar(source, tar_out))
            cache = scratch / f"cache-{round_}"
            elapsed, result = time_ours(source, cache)
            assert not result.cache_hit
            our_times.append(elapsed)
        assert result is not None
        hit_time, hit = time_ours(source, scratch / f"cache-{args.rounds - 1}")
        assert hit.cache_hit
        assert hit.path == result.path

        # Sanity: both archives list the same files (ours has no "./" prefix and no root entry).
        with tarfile.open(result.path) as ours_tar:
            ours_names = {m.name for m in ours_tar.getmembers() if not m.isdir()}
        with tarfile.open(tar_out) as tar_tar:
            tar_names = {m.name.removeprefix("./") for m in tar_tar.getmembers() if not m.isdir()}
        assert ours_names == tar_names, "archives differ in content"

        mib = total / 1024**2
        tar_best, ours_best = min(tar_times), min(our_times)
        rows = [
            ("tar czf (gzip -6)", tar_best, statistics.median(tar_times), tar_out.stat().st_size),
            ("ours, first pack", ours_best, statistics.median(our_times), result.path.stat().st_size),
            ("ours, cache hit", hit_time, hit_time, result.path.stat().st_size),
        ]
        print(
            f"\nfolder: {mib:,.0f} MiB in {sum(1 for _ in source.rglob('*'))} entries, {os.cpu_count()} CPUs"
        )
        print(
            f"{'contender':<20} {'best s':>8} {'median s':>9} {'MiB/s':>8} {'archive MiB':>12} {'ratio':>6}"
        )
        for name, best, median, size in rows:
            print(
                f"{name:<20} {best:>8.2f} {median:>9.2f} {mib / best:>8.0f} {size / 1024**2:>12.1f}"
                f" {size / total:>6.3f}"
            )
        print(f"\nours / tar czf (best of {args.rounds}): {ours_best / tar_best:.2f}x the time")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
