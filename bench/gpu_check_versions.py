"""Every package version the GPU check runs with, printed before it measures, and a check that each
carried package (the files in the wheel folder) is the one imported: installed into the target folder
that comes first on PYTHONPATH, it must shadow the machine's own (transformers 5.24 over 5.17).

    python bench/gpu_check_versions.py WHEEL_FOLDER SITE_FOLDER
"""

from __future__ import annotations

import importlib
import platform
import re
import sys
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wheel_plan import ROOTS, canonical, project_specifiers  # noqa: E402

from packaging.version import Version  # noqa: E402

IMPORT_NAMES = {"pyyaml": "yaml", "huggingface-hub": "huggingface_hub", "pydantic-core": "pydantic_core",
                "jsonschema-specifications": "jsonschema_specifications", "rpds-py": "rpds",
                "typing-inspection": "typing_inspection", "annotated-types": "annotated_types",
                "typing-extensions": "typing_extensions", "py-cpuinfo": "cpuinfo"}


def carried(folder: Path) -> dict[str, str]:
    """{package: version} of the files in the wheel folder (wheels and source packages)."""
    found = {}
    for path in sorted(folder.iterdir()):
        match = re.match(r"([^-]+)-([^-]+?)(?:-.*\.whl|\.tar\.gz)$", path.name)
        if match:
            found[canonical(match[1])] = match[2]
    return found


def main() -> int:
    folder, site = Path(sys.argv[1]), Path(sys.argv[2]).resolve()
    wanted = carried(folder)
    import torch

    cuda = torch.cuda.is_available()
    print(f"python {platform.python_version()} ({sys.executable}); torch {torch.__version__} "
          f"(CUDA {torch.version.cuda}, {'GPU ' + torch.cuda.get_device_name() if cuda else 'no GPU: CPU mode'})")
    problems = []
    needed = project_specifiers()
    print(f"{'package':26} {'version':>12}  {'from':8} imported from")
    for name in sorted(set(ROOTS) | set(wanted) | {"peft", "pandas", "pyarrow", "triton"}):
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            if name in wanted or name in ROOTS:
                problems.append(f"{name}: needed by the check but not installed (carry it: make wheels)")
            print(f"{name:26} {'-':>12}  {'absent':8}")
            continue
        module_name = IMPORT_NAMES.get(name, name.replace("-", "_"))
        try:
            location = str(Path(importlib.import_module(module_name).__file__).resolve())
        except Exception as error:  # an import that fails is what the check must show
            location = f"IMPORT FAILED: {type(error).__name__}: {error}"
            if name in wanted or name in ROOTS:
                problems.append(f"{name}: {location}")
        source = "carried" if location.startswith(str(site)) else "machine"
        print(f"{name:26} {version:>12}  {source:8} {location}")
        if name in needed and not needed[name].contains(Version(Version(version).base_version), prereleases=True):
            problems.append(f"{name}: {version} does not satisfy the project's {needed[name]} (pyproject.toml)")
        if name in wanted and (version != wanted[name] or source != "carried"):
            problems.append(f"{name}: {wanted[name]} carried, but {version} imported from {location}")
    if "polars" in sys.modules:
        problems.append("polars was imported: the check must not need it (it is not carried)")
    for problem in problems:
        print(f"PROBLEM {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
