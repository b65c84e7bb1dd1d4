"""What bench/gpu_check.sh must carry to the GPU machine, and the carried set's rehearsal here.

The GPU machine has no network; its packages are listed, with their date, in
bench/gpu_machine_packages.txt. Starting from what the check imports (ROOTS, with the version ranges of
pyproject.toml), this walks the requirements of this environment's installed packages (the pins of
envs/requirements.txt) for the machine's Python and platform, and carries a package exactly when the
machine lacks it or has a version outside what its dependants need (transformers 5.17 < the project's
>=5.20). A carried package's own requirements are walked in turn; a package the machine has is not (its
requirements are installed there). Not carried: vLLM (311 MiB and it pins another torch; the check's
generation runs HF only), polars (the check never imports it); pandas and pyarrow are on the machine.

    python bench/wheel_plan.py plan                           # the table: carried, on the machine, why
    python bench/wheel_plan.py download --dest wheels         # fill the folder for Python 3.12 (make wheels)
    python bench/wheel_plan.py download --dest D --python-version 3.11   # the rehearsal's (this machine's)
    python bench/wheel_plan.py machine-requirements           # the machine's packages the check touches
    python bench/wheel_plan.py size --dest wheels             # the folder's size and the repository's with it

Run it with the project's environment (.venv/bin/python): the versions carried are its versions.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
MACHINE_LIST = REPO / "bench" / "gpu_machine_packages.txt"
LIMIT_BYTES = 64 * 2**20  # the working tree that travels to the device machine, wheels included

# what gpu_check.sh imports, directly or through mlit's modules it uses (model building, training through
# TRL and DeepSpeed, configuration defaults through jsonschema, HF generation)
ROOTS = ["torch", "transformers", "trl", "accelerate", "deepspeed", "datasets", "jsonschema", "pyyaml", "tqdm",
         "numpy", "safetensors", "tokenizers", "sentencepiece", "packaging"]
# imported when installed (TRL imports peft at import time where it is there): rehearsed at the machine's set
OPTIONAL_ON_MACHINE = ["peft"]
NOT_CARRIED = {
    "vllm": "not carried: 311 MiB and it pins torch 2.13 (the machine has 2.11); the check's generation runs "
            "HF batched vs one at a time only",
    "polars": "not carried: the check never imports it (51 MiB)",
}
# sdists (no wheel on PyPI): built on the machine with --no-build-isolation (setuptools and torch are there)
SOURCE_ONLY = {"deepspeed"}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64", "linux_x86_64"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_machine(path: Path = MACHINE_LIST) -> tuple[str, str, dict[str, str | None]]:
    """(date, python version, {package: version or None}) from the machine's package list."""
    date, python, packages = "", "", {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if line.startswith("# date:"):
            date = line.split(":", 1)[1].strip()
        if not line or line.startswith("#"):
            continue
        name, _, version = line.partition("==")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name.strip()):
            raise ValueError(f"{path}:{number}: '{raw}' is not 'name' or 'name==version'")
        if canonical(name) == "python":
            python = version.strip()
        else:
            packages[canonical(name)] = version.strip() or None
    if not python or not date:
        raise ValueError(f"{path}: needs a '# date: YYYY-MM-DD' line and a 'python==X.Y.Z' line")
    return date, python, packages


def project_specifiers() -> dict[str, SpecifierSet]:
    """The version ranges pyproject.toml gives the project's dependencies."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return {canonical(Requirement(text).name): Requirement(text).specifier for text in project["dependencies"]}


def target_environment(python: str) -> dict[str, str]:
    env = default_environment()
    major_minor = ".".join(python.split(".")[:2])
    env.update(python_version=major_minor, python_full_version=python if python.count(".") == 2 else python + ".0",
               sys_platform="linux", platform_system="Linux", platform_machine="x86_64", os_name="posix",
               implementation_name="cpython", platform_python_implementation="CPython", extra="")
    return env


@dataclass
class Decision:
    name: str
    version: str  # this environment's version (what would be carried)
    machine: str | None  # the machine's version, "?" where its list gives none, None where it lacks it
    needed: SpecifierSet = field(default_factory=SpecifierSet)
    by: list[str] = field(default_factory=list)

    @property
    def carry(self) -> bool:
        if self.machine is None:
            return True
        if self.machine == "?":
            return False  # installed, version not recorded: assumed to satisfy (the rehearsal uses ours)
        return not self.needed.contains(Version(self.machine), prereleases=True)

    @property
    def reason(self) -> str:
        if self.machine is None:
            return "missing on the machine"
        if self.machine == "?":
            return f"on the machine (version not listed; needed {self.needed or 'any'})"
        if self.carry:
            return f"machine has {self.machine}, needed {self.needed}"
        return f"machine's {self.machine} satisfies {self.needed or 'any'}"


def plan(machine: dict[str, str | None], python: str, roots: list[str] = ROOTS,
         installed=metadata.version, requires=metadata.requires,
         root_specifiers: dict[str, SpecifierSet] | None = None) -> dict[str, Decision]:
    """Every package the check needs, with its decision (carry or not). ``installed(name)`` and
    ``requires(name)`` give this environment's version and requirement strings (importlib.metadata)."""
    env = target_environment(python)
    specs = project_specifiers() if root_specifiers is None else root_specifiers
    decisions: dict[str, Decision] = {}
    walked: set[str] = set()  # carried packages whose requirements are queued
    todo = [(canonical(root), specs.get(canonical(root), SpecifierSet()), "gpu_check") for root in roots]
    while todo:
        name, specifier, parent = todo.pop(0)
        if name in NOT_CARRIED:
            continue
        if name not in decisions:
            try:
                version = installed(name)
            except metadata.PackageNotFoundError:
                raise SystemExit(f"{name} (needed by {parent}) is not installed in this environment "
                                 f"({sys.executable}): run `make setup` first") from None
            decisions[name] = Decision(name, version, "?" if name in machine and machine[name] is None
                                       else machine.get(name))
        decision = decisions[name]
        was_walked = name in walked
        decision.needed &= specifier
        decision.by.append(parent)
        if decision.carry and not was_walked:
            walked.add(name)
            for text in requires(name) or []:
                requirement = Requirement(text)
                if requirement.marker is None or requirement.marker.evaluate(env):
                    todo.append((canonical(requirement.name), requirement.specifier, name))
    return dict(sorted(decisions.items()))


def download(decisions: dict[str, Decision], dest: Path, python: str) -> None:
    """The carried packages' files for ``python`` (X.Y) on the machine's platform, one version each."""
    dest.mkdir(parents=True, exist_ok=True)
    carried = [d for d in decisions.values() if d.carry]
    wanted = {f"{d.name}=={d.version}" for d in carried}
    for stale in dest.iterdir():  # an older version next to a new one would stop the install
        key = canonical(stale.name.split("-")[0])
        version = re.split(r"-|\.tar\.gz$", stale.name)[1] if "-" in stale.name else ""
        if f"{key}=={version}" not in wanted:
            stale.unlink()
    binary = [f"{d.name}=={d.version}" for d in carried if d.name not in SOURCE_ONLY]
    abi = "cp" + python.replace(".", "")
    common = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(dest)]
    if binary:
        command = [*common, "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
                   "--abi", abi, "--abi", "abi3", "--abi", "none", *[f"--platform={p}" for p in PLATFORMS]]
        subprocess.run([*command, "--platform=any", *binary], check=True)
    for d in carried:
        if d.name in SOURCE_ONLY:  # the source package, as it is (its build runs on the machine)
            subprocess.run([*common, "--no-binary=:all:", "--no-build-isolation", f"{d.name}=={d.version}"],
                           check=True)


def tracked_bytes() -> int:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    return sum((REPO / f.decode()).stat().st_size for f in files if f and (REPO / f.decode()).is_file())


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def print_size(dest: Path) -> int:
    wheels, repo = folder_bytes(dest), tracked_bytes()
    total = wheels + repo
    print(f"{dest}: {len(list(dest.iterdir()))} files, {wheels / 2**20:.1f} MiB; with the repository's tracked files "
          f"({repo / 2**20:.1f} MiB): {total / 2**20:.1f} MiB of the {LIMIT_BYTES / 2**20:.0f} MiB that may travel")
    return total


def print_plan(decisions: dict[str, Decision], date: str, python: str) -> None:
    print(f"GPU machine's packages: {MACHINE_LIST.relative_to(REPO)} (read {date}; Python {python})")
    print(f"{'package':22} {'carry':>5} {'version':>12}  why")
    for d in decisions.values():
        print(f"{d.name:22} {'yes' if d.carry else 'no':>5} {d.version if d.carry else (d.machine or ''):>12}  "
              f"{d.reason}")
    for name, why in NOT_CARRIED.items():
        print(f"{name:22} {'no':>5} {'':>12}  {why}")


def machine_requirements(decisions: dict[str, Decision], machine: dict[str, str | None]) -> list[str]:
    """The machine's packages the check touches, as pip requirements for the rehearsal's environment:
    its version where the list gives one, else this environment's (the machine's is unknown)."""
    names = [d.name for d in decisions.values() if not d.carry or d.machine is not None]
    names += [name for name in OPTIONAL_ON_MACHINE if name in machine]
    names += [name for name in ("setuptools", "wheel", "pip") if name in machine]  # the sdist build uses them
    lines = []
    for name in dict.fromkeys(names):
        version = machine.get(name)
        if version is None:
            try:
                version = metadata.version(name)
            except metadata.PackageNotFoundError:
                lines.append(name)
                continue
        lines.append(f"{name}=={version}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["plan", "download", "machine-requirements", "size"])
    parser.add_argument("--machine", type=Path, default=MACHINE_LIST)
    parser.add_argument("--dest", type=Path, default=REPO / "wheels")
    parser.add_argument("--python-version", help="X.Y the files are for (default: the machine's)")
    args = parser.parse_args()
    date, python, machine = read_machine(args.machine)
    target = args.python_version or ".".join(python.split(".")[:2])
    if args.action == "size":
        raise SystemExit(0 if print_size(args.dest) <= LIMIT_BYTES else 1)
    decisions = plan(machine, python)
    if args.action == "machine-requirements":
        print("\n".join(machine_requirements(decisions, machine)))
        return
    print_plan(decisions, date, python)
    if args.action == "download":
        download(decisions, args.dest, target)
        print(f"files for Python {target}:")
        for path in sorted(args.dest.iterdir()):
            print(f"  {path.name} ({path.stat().st_size / 2**20:.1f} MiB)")
        if print_size(args.dest) > LIMIT_BYTES:
            raise SystemExit(f"{args.dest} with the repository is over {LIMIT_BYTES / 2**20:.0f} MiB: it cannot travel")


if __name__ == "__main__":
    main()
