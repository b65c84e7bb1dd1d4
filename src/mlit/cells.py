"""The grid's cells: a training set (dataset x composition x size x seed) and a base model fine-tuned on
it, with the cell id that names both in paths (built and parsed here only). Pure: no I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

def composed_config_name(composition) -> str:
    """What a ``composed_configs`` dataset loads for a composition, as ``{lang}`` of its config or
    local template: the languages joined by '_', plus '_sampled' (Lima-X's DE_FR_IT_ES,
    EN_DE_FR_IT_ES_sampled); a monolingual composition is its language."""
    return "_".join(composition.languages) + ("_sampled" if composition.sampled else "")


@dataclass(frozen=True)
class DataCell:
    """One training set: a dataset in a language composition, subsampled to a size with a seed."""

    dataset: str
    composition: str
    size: int | str
    seed: int

    @property
    def data_id(self) -> str:
        return f"{self.dataset}__{self.composition}__{self.size}__seed{self.seed}"


@dataclass(frozen=True)
class Cell:
    """One grid cell: a base model fine-tuned on one training set."""

    base_model: str
    data: DataCell

    @property
    def cell_id(self) -> str:
        """``<model>__<dataset>__<composition>__<size>__seed<seed>``: built here and parsed by ``parse``
        only (names are safe names, so '__' separates the fields)."""
        return f"{self.base_model}__{self.data.data_id}"

    @classmethod
    def parse(cls, cell_id: str) -> Cell:
        parts = cell_id.split("__")
        if len(parts) != 5 or not parts[4].startswith("seed") or not parts[4][4:].isdigit():
            raise ValueError(f"'{cell_id}' is not a cell id of the form <model>__<dataset>__<composition>__<size>__seed<n>")
        size = int(parts[3]) if parts[3].isdigit() else parts[3]
        return cls(base_model=parts[0], data=DataCell(dataset=parts[1], composition=parts[2], size=size,
                                                      seed=int(parts[4][4:])))

    def fields(self) -> dict[str, Any]:
        return {"cell": self.cell_id, "base_model": self.base_model, **asdict(self.data), "size": str(self.data.size)}


# The cell of a base_models[] entry with evaluate_only: true (an already tuned model, FastChat-style):
# <name>__evaluated__as_is__none__seed0. Its composition is no language composition: the comparisons skip it.
EVALUATED_DATASET, AS_IS = "evaluated", "as_is"


def evaluated_cell(model: str) -> Cell:
    return Cell(base_model=model, data=DataCell(dataset=EVALUATED_DATASET, composition=AS_IS, size="none", seed=0))


def cell_fields(cell_id: str, full_size: int | None = None) -> dict[str, Any]:
    """A cell's fields for the tables, with its examples per language: the size, or for ``full`` the
    dataset's size where it is known (``full_size``; None where not), so that sizes compare across datasets.
    The one reading of a cell id's size (the grid passes what it knows of the dataset)."""
    cell = Cell.parse(cell_id)
    size = cell.data.size
    return {**cell.fields(), "examples_per_language": size if isinstance(size, int) else full_size}
