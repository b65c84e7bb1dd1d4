"""What the GPU check carries to the GPU machine (bench/wheel_plan.py) and how mlit's training config
takes activation checkpointing under either transformers' name (the machine's 5.17 lacks the new one)."""

from __future__ import annotations

import dataclasses
import sys

import pytest
from packaging.specifiers import SpecifierSet

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))
from wheel_plan import MACHINE_LIST, NOT_CARRIED, plan, read_machine  # noqa: E402

from mlit.train.sft import checkpointing_argument  # noqa: E402

# a small world: what this environment has installed, and what each package requires
VERSIONS = {"transformers": "5.24.0", "trl": "1.16.0", "huggingface-hub": "1.33.0", "tokenizers": "0.23.2",
            "datasets": "5.2.0", "dill": "0.4.1", "pandas": "3.1.1", "vllm": "0.32.0"}
REQUIRES = {"transformers": ["huggingface-hub>=1.3,<2.0", "tokenizers>=0.23.1,<0.24", "torchvision; extra == 'vision'"],
            "trl": ["transformers>=4.56.2", "datasets>=3", "vllm>=0.10; extra == 'vllm'"],
            "datasets": ["dill<0.4.2", "pandas", "huggingface-hub>=0.34"],
            "dill": [], "pandas": [], "huggingface-hub": [], "tokenizers": [], "vllm": []}


def world_plan(machine, roots=("transformers", "trl"), specifiers=None):
    return plan(machine, "3.12.3", roots=list(roots), installed=VERSIONS.__getitem__,
                requires=REQUIRES.__getitem__,
                root_specifiers=specifiers if specifiers is not None else {"transformers": SpecifierSet(">=5.20")})


def test_carries_what_the_machine_lacks_or_has_too_old_and_nothing_it_has():
    decisions = world_plan({"transformers": "5.17.0", "huggingface-hub": "1.33.0", "tokenizers": "0.23.2",
                            "pandas": None})
    carried = {name: d.version for name, d in decisions.items() if d.carry}
    assert carried == {"transformers": "5.24.0", "trl": "1.16.0", "datasets": "5.2.0", "dill": "0.4.1"}
    assert "machine has 5.17.0, needed >=4.56.2,>=5.20" in decisions["transformers"].reason
    assert not decisions["pandas"].carry and "version not listed" in decisions["pandas"].reason
    assert "vllm" not in decisions and "torchvision" not in decisions  # extras are not walked


def test_a_machine_version_outside_a_dependants_range_is_carried():
    # tokenizers 0.22 on the machine: fine for itself, too old for the carried transformers (>=0.23.1)
    decisions = world_plan({"transformers": "5.17.0", "huggingface-hub": "1.33.0", "tokenizers": "0.22.0"})
    assert decisions["tokenizers"].carry and decisions["tokenizers"].version == "0.23.2"
    # new enough transformers on the machine: nothing of its requirements is walked
    decisions = world_plan({"transformers": "5.24.0"}, roots=("transformers",))
    assert list(decisions) == ["transformers"] and not decisions["transformers"].carry


def test_the_machine_list_is_dated_and_read():
    date, python, packages = read_machine(MACHINE_LIST)
    assert date and python.startswith("3.12")
    assert packages["transformers"] == "5.17.0" and packages["torch"] == "2.11.0"
    assert "trl" not in packages and "polars" not in packages and packages["pandas"] is None
    assert "vllm" in NOT_CARRIED and "polars" in NOT_CARRIED


def test_a_malformed_machine_list_names_the_line(tmp_path):
    bad = tmp_path / "packages.txt"
    bad.write_text("# date: 2026-11-17\npython==3.12.3\ntorch >= 2\n")
    with pytest.raises(ValueError, match=r"packages.txt:3: 'torch >= 2'"):
        read_machine(bad)
    bad.write_text("torch==2.11.0\n")
    with pytest.raises(ValueError, match="date"):
        read_machine(bad)


def test_activation_checkpointing_under_the_name_the_config_takes():
    from trl import SFTConfig

    @dataclasses.dataclass
    class OldArguments:  # transformers 5.17's TrainingArguments: the old name only
        gradient_checkpointing: bool = False

    assert checkpointing_argument(OldArguments, True) == {"gradient_checkpointing": True}
    assert checkpointing_argument(SFTConfig, False) == {"activation_checkpointing": False}
    OldArguments(**checkpointing_argument(OldArguments, True))  # accepted
