"""The GPU check's rehearsal here: proves the carried set complete before a GPU machine is lent.

1. A fresh virtual environment holding only what the GPU machine has (bench/gpu_machine_packages.txt) of
   what the check touches, at the machine's versions, with this machine's Python (3.11; the device's is
   3.12) and two substitutions printed below (torch: the CPU build; a version with no wheel for 3.11);
   every other package that pip brought along but the machine's list lacks is removed again.
2. The carried set for this Python (bench/wheel_plan.py download --python-version 3.11).
3. bench/gpu_check.sh in its CPU mode with that interpreter: it installs the wheel folder with the same
   command the device runs (--no-index, into a target folder first on PYTHONPATH), prints every version,
   then builds, trains (TRL; DeepSpeed ZeRO-3 through `mlit train`) and generates.
A missing package or a version clash fails step 3. Steps 1-2 are cached in .rehearsal/<key>/ (git-ignored),
keyed by the package list, the plan, the pins, pyproject.toml and RECIPE, so a rerun only runs step 3.

    .venv/bin/python bench/gpu_rehearsal.py            # what tests/test_gpu_check_rehearsal.py runs
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wheel_plan import MACHINE_LIST, REPO, canonical, read_machine  # noqa: E402

CACHE = REPO / ".rehearsal"
# torch: PyPI's Linux torch 2.11.0 is the CUDA 13 build (nvidia-* dependencies, about 900 MB); PyTorch's own
# CPU index cannot be reached here, so the rehearsal uses this environment's CPU build.
TORCH_CPU = "2.13.0"
ALWAYS_ALLOWED = {"pip", "setuptools", "wheel"}
RECIPE = "3"  # bump when machine_environment or prepare changes what they build


def key() -> str:
    digest = hashlib.sha256(RECIPE.encode())
    for path in (MACHINE_LIST, REPO / "bench" / "wheel_plan.py", REPO / "envs" / "requirements.txt",
                 REPO / "pyproject.toml"):
        digest.update(path.read_bytes())
    return f"py{sys.version_info.major}{sys.version_info.minor}-{digest.hexdigest()[:12]}"


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("$ " + " ".join(str(c) for c in command), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, check=True, **kwargs)
    print(f"({time.perf_counter() - started:.0f} s)", flush=True)
    return done


def installable(python: str, requirement: str) -> bool:
    probe = subprocess.run([python, "-m", "pip", "install", "--quiet", "--dry-run", "--no-deps", "--ignore-installed",
                            requirement], capture_output=True, text=True)
    return probe.returncode == 0


def installed_here(name: str, version: str) -> bool:
    """This environment (same Python) has the version installed: no probe needed, link_installed takes its files."""
    from packaging.specifiers import SpecifierSet

    try:
        return SpecifierSet(f"=={version}").contains(metadata.version(name), prereleases=True)
    except metadata.PackageNotFoundError:
        return False


def link_installed(venv: Path, requirements: list[str], machine: dict[str, str | None]) -> list[str]:
    """Into the venv, this environment's installed files of every distribution pip would otherwise unpack from
    the same wheel: a requirement line at its version (torch==2.13.0 matches this environment's 2.13.0+cpu, as it
    does for pip), and, walking their requirements, a dependency on the machine's list at its listed version, or,
    where the list gives none, at this environment's version if it satisfies the dependant (as
    wheel_plan.machine_requirements takes this environment's version for those). Hard links
    (copies across file systems): pip then finds them installed and unpacks and byte-compiles only the rest
    (torch alone is 750 MB and 14,000 files). The files are the ones the wheel's RECORD lists, .pyc included;
    console scripts get the venv's interpreter. Returns the linked distributions."""
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet

    site = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    python = (venv / "bin" / "python").absolute()
    marker_env = {**default_environment(), "extra": ""}
    todo = []
    for line in requirements:
        name, _, version = line.partition("==")
        if version:
            todo.append((canonical(name), SpecifierSet(f"=={version}")))
    linked, seen = [], set()
    while todo:
        name, wanted = todo.pop(0)
        if name in seen or name in ALWAYS_ALLOWED:  # the venv's own pip: pip upgrades it itself
            continue
        seen.add(name)
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        if not wanted.contains(dist.version, prereleases=True) or not dist.files:
            continue
        for file in dist.files:
            source = Path(dist.locate_file(file))
            target = Path(os.path.normpath(site / file))
            if not source.is_file():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.parent == venv / "bin":  # a console script: its first line names the interpreter
                lines = source.read_bytes().split(b"\n", 1)
                if lines[0].startswith(b"#!") and len(lines) == 2:
                    target.write_bytes(b"#!" + str(python).encode() + b"\n" + lines[1])
                    target.chmod(source.stat().st_mode)
                    continue
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
        linked.append(f"{name}=={dist.version}")
        for text in dist.requires or []:
            requirement = Requirement(text)
            dependency = canonical(requirement.name)
            if dependency in machine and (requirement.marker is None or requirement.marker.evaluate(marker_env)):
                listed = machine[dependency]
                todo.append((dependency, SpecifierSet(f"=={listed}") if listed else requirement.specifier))
    return linked


def machine_environment(root: Path, machine: dict[str, str | None]) -> Path:
    """root/venv: the machine's packages that the check touches, nothing the machine lacks."""
    venv = root / "venv"
    python = str(venv / "bin" / "python")
    run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", str(venv)])
    wanted = subprocess.run([sys.executable, str(REPO / "bench" / "wheel_plan.py"), "machine-requirements"],
                            capture_output=True, text=True, check=True).stdout.split()
    requirements = []
    for line in wanted:
        name, _, version = line.partition("==")
        if name == "torch":
            print(f"substitute: torch=={TORCH_CPU} (CPU build) for the machine's torch=={version}+cu130: PyPI's "
                  f"Linux torch {version} is the CUDA 13 build, PyTorch's CPU index is out of reach here")
            line = f"torch=={TORCH_CPU}"
        elif version and not installed_here(name, version) and not installable(python, line):
            mine = subprocess.run([sys.executable, "-c", f"from importlib.metadata import version; print(version("
                                   f"'{name}'))"], capture_output=True, text=True).stdout.strip()
            print(f"substitute: {name}=={mine} for the machine's {line}: no distribution of it for Python "
                  f"{sys.version_info.major}.{sys.version_info.minor} here")
            line = f"{name}=={mine}"
        requirements.append(line)
    (root / "machine-requirements.txt").write_text("\n".join(requirements) + "\n")
    linked = link_installed(venv, requirements, machine)
    print(f"linked from this environment (the same version's files): {' '.join(linked) or 'none'}")
    run([python, "-m", "pip", "install", "--quiet", "-r", str(root / "machine-requirements.txt")])
    installed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                               check=True).stdout.split()
    extra = [line.split("==")[0] for line in installed
             if canonical(line.split("==")[0]) not in machine and canonical(line.split("==")[0]) not in ALWAYS_ALLOWED]
    if extra:
        print(f"removed, as the machine's list lacks them: {' '.join(extra)}")
        run([python, "-m", "pip", "uninstall", "--quiet", "-y", *extra])
    return venv


def prepare() -> Path:
    date, python, machine = read_machine()
    root = CACHE / key()
    if (root / "ready").exists():
        print(f"cached: {root} (the machine's packages of {date}, wheels for this Python)")
        return root
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    machine_environment(root, machine)
    target = f"{sys.version_info.major}.{sys.version_info.minor}"
    run([sys.executable, str(REPO / "bench" / "wheel_plan.py"), "download", "--dest", str(root / "wheels"),
         "--python-version", target])
    (root / "ready").write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))
    for stale in CACHE.glob("py*-*"):  # earlier keys (torch_extensions/ stays: DeepSpeed's compiled ops)
        if stale != root:
            shutil.rmtree(stale, ignore_errors=True)
    return root


def check_environment(root: Path, wheels: Path | None = None) -> dict[str, str]:
    """The environment gpu_check.sh runs in: the rehearsal's interpreter, no index, no extra wheel folder."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV", "CUDA_VISIBLE"))}
    env.update(PYTHON=str(root / "venv" / "bin" / "python"), GPU_CHECK_DRY="1",
               GPU_CHECK_WHEELS=str(wheels or root / "wheels"), GPU_CHECK_SITE=str(root / "site"),
               PIP_CONFIG_FILE=os.devnull,  # no index, no extra wheel folder: only the carried files
               TORCH_EXTENSIONS_DIR=str(CACHE / "torch_extensions"),
               PATH=f"{root / 'venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
               GPU_CHECK_EXAMPLES=os.environ.get("GPU_CHECK_EXAMPLES", "8"))
    return env


def main() -> int:
    started = time.perf_counter()
    root = prepare()
    prepared = time.perf_counter() - started
    status = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh")], env=check_environment(root)).returncode
    print(f"rehearsal: preparation {prepared:.0f} s, check {time.perf_counter() - started - prepared:.0f} s, "
          f"exit {status}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
