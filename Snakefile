# mlit: multilingual instruction tuning (Weber et al., EMNLP 2024), as a Snakemake workflow.
#   snakemake --cores 2                                    # the demo grid (config/config.yaml)
#   snakemake -n --configfile config/paper.yaml            # the study's grid, dry run
# A --configfile replaces config/config.yaml (it is not merged with it).
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")

if not workflow.overwrite_configfiles:
    DEFAULT_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"
    # Snakemake's own message for a YAML syntax error names no line; this one does. (A --configfile is
    # read before this file runs: there, `snakemake --verbose` shows the line and column.)
    import yaml

    try:
        with DEFAULT_CONFIG.open(encoding="utf-8") as handle:
            yaml.compose(handle, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise WorkflowError(
            f"config file {DEFAULT_CONFIG} is not valid YAML: {error}"
        ) from None

    configfile: str(DEFAULT_CONFIG)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/model.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/judge.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/plan.smk"
include: "workflow/rules/summary.smk"


# Quick steps that run where Snakemake runs, also under a cluster profile (data prep needs the
# dataset hub, which compute nodes often cannot reach).
localrules:
    all,
    prepare_data,
    build_base_model,
    fetch_base_model,
    prepare_base_model,
    tables,
    partial_tables,
    plan,
    annotation_sheets,


# The target lists the answers and judgments the tables summarise, not only the tables: Snakemake reruns
# the producer of a missing file only for a job that needs to run, and tables that are up to date do not,
# so a judgments or answers file deleted (by hand, or by Snakemake after a failed judge job) would never
# be made again. A target's missing input is always made, and the tables after it.
rule all:
    default_target: True
    input:
        rules.tables.output,
        answers=[
            f"{RESULTS}/answers/{cell}/{lang}.jsonl"
            for cell in GRID.answer_cells
            for lang in EVAL_LANGS
        ],
        judgments=JUDGMENT_FILES,
        further_judges=[
            path for name in GRID.extra_judges for path in further_judgment_files(name)
        ],
        judge_agreement=JUDGE_AGREEMENT_FILES,
