"""A local stand-in for the Dockerfile's base image, so the Dockerfile under test is the one users build.

No image registry is reachable, so `python:3.11-slim-bookworm` cannot be pulled. This module builds an
equivalent from Debian packages: `debootstrap --variant=minbase bookworm` plus what the official slim image
provides that a Python Dockerfile relies on: Python 3.11 (bookworm's own), `python`, `python3` and `pip` in
`/usr/local/bin` with packages installed under `/usr/local/lib/python3.11/site-packages` (made here as a venv
rooted at /usr/local, which gives exactly that layout), `venv` support, CA certificates, `LANG=C.UTF-8` and
`CMD ["python3"]`. The result is imported with `podman import` under the exact name the FROM line uses.

The root filesystem is cached as a tarball under `.e2e/base/`, keyed by a hash of this recipe, and the
imported image carries the key as a label: a warm run reuses the image, a run with a wiped podman store
re-imports the tarball (seconds), and only a fresh machine or a changed recipe runs debootstrap (about a
minute).

Usage: python -m e2e.base_image [IMAGE_NAME]   (default: python:3.11-slim-bookworm)
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path

from e2e.workspace import WORKDIR, podman, run

DEFAULT_NAME = "python:3.11-slim-bookworm"
SUITE = "bookworm"
# What the official python:*-slim image installs besides Python itself (netbase gives /etc/services and
# /etc/protocols, which some network libraries read).
PACKAGES = ("ca-certificates", "netbase", "python3", "python3-venv")
# Steps run inside the new root filesystem after debootstrap. Part of the cache key.
SETUP = (
    # pip, python and python3 in /usr/local/bin, packages in /usr/local/lib/python3.11/site-packages.
    "python3 -m venv /usr/local",
    "rm -f /usr/local/bin/activate* /usr/local/bin/Activate.ps1",
    # The official image's interpreter is not marked externally managed (PEP 668).
    "rm -f /usr/lib/python3*/EXTERNALLY-MANAGED",
    # Like the slim image: no apt lists or package cache, no docs.
    "apt-get clean",
    "rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*",
)
CONFIG = (
    # Verbatim from the official image, whose PATH does name /usr/local/bin twice.
    "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)
KNOWN_BASES = {DEFAULT_NAME}
KEY_LABEL = "org.sagemaker-constructs.e2e.base-key"
RECIPE_VERSION = "1"
# The host's PIP_* and proxy settings must not leak into the image being made.
_CHROOT_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", "HOME": "/root"}


def recipe_key() -> str:
    recipe = "\n".join((RECIPE_VERSION, SUITE, *PACKAGES, *SETUP, *CONFIG))
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def base_images(dockerfile: Path) -> list[str]:
    """The external images a Dockerfile's FROM lines name (stage references and `scratch` excluded).

    ARGs declared before the first FROM are substituted with their defaults, as `docker build` does when no
    `--build-arg` overrides them.
    """
    args: dict[str, str] = {}
    stages: set[str] = set()
    images: list[str] = []
    seen_from = False
    for raw in _logical_lines(dockerfile.read_text()):
        words = raw.split()
        if not words:
            continue
        instruction = words[0].upper()
        if instruction == "ARG" and not seen_from:
            name, _, default = words[1].partition("=")
            args[name] = default.strip("\"'")
        elif instruction == "FROM":
            seen_from = True
            rest = [w for w in words[1:] if not w.startswith("--")]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), ""), rest[0])
            if len(rest) >= 3 and rest[1].upper() == "AS":
                stages.add(rest[2].lower())
            if image.lower() not in stages and image != "scratch" and image not in images:
                images.append(image)
    return images


def _logical_lines(text: str) -> list[str]:
    lines, current = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        lines.append(current + line)
        current = ""
    if current:
        lines.append(current)
    return lines


def ensure_base_image(name: str = DEFAULT_NAME, *, log: Path | None = None) -> str:
    """Make `name` exist in the e2e podman store, built from this recipe; return how it was obtained."""
    if name not in KNOWN_BASES:
        raise ValueError(
            f"no local recipe for base image {name!r} (known: {sorted(KNOWN_BASES)}); "
            "no registry is reachable here, so e2e/base_image.py must learn to build it"
        )
    key = recipe_key()
    # FROM python:3.11-slim-bookworm means docker.io/library/python:3.11-slim-bookworm; tagged so, the build
    # resolves it from local storage (a bare `podman import NAME` would store localhost/NAME).
    name = qualified(name)
    inspected = podman(
        "image", "inspect", "--format", f'{{{{index .Labels "{KEY_LABEL}"}}}}', name, check=False
    )
    if inspected.returncode == 0 and inspected.stdout.strip() == key:
        return "cached image"
    cache = WORKDIR / "base"
    tarball = cache / f"{SUITE}-{key}.tar"
    how = "cached rootfs tarball"
    if not tarball.is_file():
        _build_rootfs_tarball(tarball, log or cache / f"{SUITE}-{key}.log")
        how = "debootstrap"
    changes = [*CONFIG, f"LABEL {KEY_LABEL}={key}"]
    argv = ["import", *[a for c in changes for a in ("--change", c)], str(tarball), name]
    podman(*argv)
    return how


def qualified(name: str) -> str:
    """Docker's reading of an image reference: `python:3` is `docker.io/library/python:3`."""
    first, slash, _ = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return name
    return f"docker.io/{name}" if slash else f"docker.io/library/{name}"


def _build_rootfs_tarball(tarball: Path, log: Path) -> None:
    tarball.parent.mkdir(parents=True, exist_ok=True)
    rootfs = tarball.with_suffix(".rootfs")
    shutil.rmtree(rootfs, ignore_errors=True)
    try:
        with log.open("w") as out:
            argv = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", SUITE, str(rootfs)]
            mirror = _apt_mirror()
            if mirror:
                argv.append(mirror)
            result = subprocess.run(argv, check=False, stdout=out, stderr=subprocess.STDOUT)
            if result.returncode != 0:
                raise RuntimeError(
                    f"debootstrap failed ({result.returncode}); log: {log}\n{log.read_text()[-3000:]}"
                )
            for step in SETUP:
                run(["chroot", str(rootfs), "/bin/sh", "-ec", step], env=_CHROOT_ENV)
        partial = tarball.with_suffix(".tar.partial")
        # Numeric owners and a fixed order keep the tarball independent of the host's user database.
        run(["tar", "--numeric-owner", "--sort=name", "-C", str(rootfs), "-cf", str(partial), "."])
        partial.replace(tarball)
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def _apt_mirror() -> str | None:
    """The Debian mirror apt is configured with (deb822 or one-line format), if any."""
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.is_file():
        match = re.search(r"^URIs:\s*(\S+/debian)/?\s*$", sources.read_text(), re.MULTILINE)
        if match:
            return match.group(1)
    legacy = Path("/etc/apt/sources.list")
    if legacy.is_file():
        match = re.search(
            r"^deb\s+(?:\[[^]]*\]\s+)?(\S+/debian)/?\s+bookworm\s", legacy.read_text(), re.MULTILINE
        )
        if match:
            return match.group(1)
    return None


if __name__ == "__main__":
    image = sys.argv[1] if len(sys.argv) > 1 else DEFAULT_NAME
    print(f"{image}: {ensure_base_image(image)}")
