"""The grid's expansion: compositions x datasets x sizes x seeds into training sets (``DataCell``), each
trained on by every base model that is not ``evaluate_only`` (``Cell``), plus one evaluated cell per
``evaluate_only`` model; with the checks that need no file (compositions, evaluation languages, sizes).
Pure functions of the filled config and, for sizes, each dataset's items (which ``mlit.config.Grid``
reads from the data files beforehand). No I/O."""

from __future__ import annotations

from dataclasses import dataclass

from mlit.cells import Cell, DataCell, evaluated_cell
from mlit.config_error import ConfigError
from mlit.langs import LANGUAGES, Composition, parse_composition


@dataclass(frozen=True)
class Expansion:
    """A config's cells, each keyed by its id, in the config's order."""

    data_cells: dict[str, DataCell]  # the training sets
    cells: dict[str, Cell]  # the trained cells
    evaluated_cells: dict[str, Cell]  # base_models[].evaluate_only: answered and judged as they are


def compositions(config: dict) -> dict[str, Composition]:
    """``compositions``, parsed (ConfigError naming the entry that is not one)."""
    parsed = {}
    for index, name in enumerate(config["compositions"]):
        try:
            parsed[name] = parse_composition(name)
        except ValueError as error:
            raise ConfigError(f"compositions[{index}]: {error}") from None
    return parsed


def eval_languages(config: dict) -> list[str]:
    """``eval_languages``: known languages, each once."""
    languages = list(config["eval_languages"])
    for index, lang in enumerate(languages):
        if lang not in LANGUAGES:
            raise ConfigError(f"eval_languages[{index}]: unknown language '{lang}'; allowed: {list(LANGUAGES)}")
        if lang in languages[:index]:
            raise ConfigError(f"eval_languages[{index}]: '{lang}' is listed twice; list each language once")
    return languages


def training_languages(parsed: dict[str, Composition]) -> tuple[str, ...]:
    """The languages of any composition, in the study's order: those every dataset needs."""
    return tuple(lang for lang in LANGUAGES if any(lang in c.languages for c in parsed.values()))


def _sizes_key(config: dict, name: str) -> str:
    return f"datasets.{name}.sizes" if "sizes" in config["datasets"][name] else "sizes"


def dataset_sizes(config: dict, name: str) -> list[int | str]:
    """The sizes of dataset ``name`` (its own ``sizes``, else the grid's): whole numbers or 'full', and
    only 'full' for a ``composed_configs`` dataset (loaded whole)."""
    spec = config["datasets"][name]
    sizes = list(spec.get("sizes", config["sizes"]))
    for index, size in enumerate(sizes):
        if isinstance(size, float):  # the schema's integer type takes 40.0; a slice does not
            raise ConfigError(f"{_sizes_key(config, name)}[{index}]: {size} is not a whole number of examples; write "
                              f"{int(size) if size.is_integer() else round(size)}")
    if spec.get("composed_configs") and any(size != "full" for size in sizes):
        raise ConfigError(
            f"datasets.{name}.sizes: {sizes} with composed_configs: true; a composed dataset is "
            f"loaded whole (the authors' own sets), so only 'full' is allowed; set datasets.{name}.sizes: "
            "[full], or composed_configs: false to subset the monolingual configs"
        )
    return sizes


def check_available(config: dict, name: str, available: int | None, languages: tuple[str, ...]) -> None:
    """No size of dataset ``name`` above its ``available`` items (in every one of ``languages``; None:
    not known before the data is prepared)."""
    for size in dataset_sizes(config, name):
        if size != "full" and available is not None and size > available:
            raise ConfigError(
                f"{_sizes_key(config, name)}: size {size} is larger than dataset '{name}', which has {available} "
                f"items in every one of {list(languages)}; allowed: sizes up to {available}, or 'full'"
            )


def expand(config: dict, dataset_items: dict[str, int | None]) -> Expansion:
    """The cells of ``config``, given each dataset's items (``dataset_items``: name -> items present in
    every training language, None where unknown); ConfigError where a size does not fit."""
    parsed = compositions(config)
    languages = training_languages(parsed)
    data_cells = {}
    for name in config["datasets"]:
        sizes = dataset_sizes(config, name)
        check_available(config, name, dataset_items[name], languages)
        for composition in parsed:
            for size in sizes:
                for seed in config["seeds"]:
                    cell = DataCell(dataset=name, composition=composition, size=size, seed=seed)
                    data_cells[cell.data_id] = cell
    models = config["base_models"]
    trained = [Cell(base_model=model["name"], data=data) for model in models if not model["evaluate_only"]
               for data in data_cells.values()]
    evaluated = [evaluated_cell(model["name"]) for model in models if model["evaluate_only"]]
    return Expansion(data_cells=data_cells, cells={cell.cell_id: cell for cell in trained},
                     evaluated_cells={cell.cell_id: cell for cell in evaluated})
