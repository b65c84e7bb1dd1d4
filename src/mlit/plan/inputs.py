"""What the ``plan`` rule reads: the inputs it makes (data of local datasets, base models that are built
or on disk: cheap local jobs) and the state it measures from (a new finished cell reruns it)."""

from __future__ import annotations

import json
from pathlib import Path


def plan_inputs(grid, results: str) -> list[str]:
    """Prepared data of local datasets and prepared base models that need no download; a hub dataset or
    checkpoint is read if it is already there, else estimated (not fetched for a plan)."""
    data = [f"{results}/data/{data_id}/train.jsonl" for data_id, cell in grid.data_cells.items()
            if "local" in grid.datasets[cell.dataset]]
    models = [grid.model_path(name, results) for name in grid.base_models
              if grid.builds_model(name)
              or (not grid.fetches_model(name) and Path(grid.model_source(name, results)).exists())]
    return data + models


def plan_state(grid, results: str, judgment_files: list[str]) -> str:
    """Finished trainings and judge cells by modification time (JSON): as the rule's params, a new one
    reruns the plan."""
    files = [f"{results}/models/{cell}/train_info.json" for cell in grid.cells] + list(judgment_files)
    return json.dumps({path: Path(path).stat().st_mtime for path in files if Path(path).exists()}, sort_keys=True)
