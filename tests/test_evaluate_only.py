"""Evaluate any model (base_models[].evaluate_only): an already tuned model is answered, judged and tabled
beside the trained cells, FastChat-style, with no training job."""

import copy

import polars as pl
import pytest
import yaml

from mlit.config import Grid
from mlit.results.analysis import parallel_gain, score_by_size

from conftest import DEMO, REPO, job_counts, snakemake

TUNED = {"name": "tuned", "chat_template": "opengptx", "evaluate_only": True,
         "build": {"vocab_size": 1000, "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2}}
CELL = "tuned__evaluated__as_is__none__seed0"


def config_with_tuned():
    config = copy.deepcopy(DEMO)
    config.update(compositions=["EN"], sizes=[40])
    config["base_models"] = config["base_models"] + [TUNED]
    return config


def test_an_evaluated_model_has_one_cell_and_no_training_cell():
    grid = Grid(config_with_tuned(), repo_root=REPO)
    assert list(grid.evaluated_cells) == [CELL]
    assert all(cell.base_model == "tiny-llama" for cell in grid.cells.values())  # nothing of it is trained
    assert list(grid.answer_cells) == [*grid.cells, CELL]
    fields = grid.cell_fields(CELL)
    assert (fields["base_model"], fields["composition"], fields["examples_per_language"]) == ("tuned", "as_is", None)
    # its generate job reads its section generation/<cell> of the execution file, as a trained cell's does
    assert grid.execution_settings()["generation"][CELL] == grid.generation_launch("tuned")


@pytest.mark.slow
def test_the_workflow_answers_and_judges_it_without_training(tmp_path):
    configfile = tmp_path / "config.yaml"
    configfile.write_text(yaml.safe_dump(config_with_tuned()))
    result = snakemake(tmp_path, "-n", "-p", configfile=configfile)
    counts = job_counts(result.stdout)
    assert counts["train"] == 1 and counts["generate"] == 2 and counts["judge"] == 2  # EN cell + tuned
    assert counts["prepare_base_model"] == 2 and counts["tables"] == 1
    generate = [block for block in result.stdout.split("\n\n") if "generate --model results/base_models/tuned " in block]
    assert generate and f"--model-id {CELL}" in generate[0]  # answers straight from the prepared checkpoint


def test_the_tables_put_it_beside_the_trained_cells_and_the_comparisons_skip_it():
    rows = [{"cell": c, "base_model": m, "dataset": d, "composition": comp, "size": size, "seed": 1, "lang": "EN",
             "question_id": q, "category": "writing", "turn": 1, "score": score, "failed": False,
             "examples_per_language": examples}
            for c, m, d, comp, size, examples in (("m__d__EN__10__seed1", "m", "d", "EN", "10", 10),
                                                   ("m__d__ENDE__10__seed1", "m", "d", "ENDE", "10", 10),
                                                   (CELL, "tuned", "evaluated", "as_is", "none", None))
            for q, score in (("q1", 4.0), ("q2", 6.0))]
    long = pl.DataFrame(rows)
    assert set(score_by_size(long)["composition"]) == {"EN", "ENDE"}  # no training set: not on the size axis
    assert set(parallel_gain(long, n_boot=20)["composition"]) == {"ENDE"}
