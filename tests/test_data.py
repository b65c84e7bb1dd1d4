import json

import pytest

from mlit.data import DataError, bactrian_messages, compose, lima_messages, load_parallel, prepare, select_items
from mlit.io import read_jsonl

from conftest import DEMO_DATA

SOURCE = {"format": "bactrian", "local": DEMO_DATA, "id_field": "id"}


@pytest.fixture(scope="module")
def demo():
    return load_parallel(SOURCE, ("EN", "DE", "FR", "IT", "ES"))


def test_subsets_are_deterministic_and_nested():
    ids = {f"item-{i}" for i in range(500)}
    small, large = select_items(ids, 50, seed=3), select_items(ids, 200, seed=3)
    assert small == select_items(set(sorted(ids, reverse=True)), 50, seed=3)  # order of input does not matter
    assert large[:50] == small and set(small) < set(large)
    assert select_items(ids, 50, seed=4) != small  # the seed matters
    assert len(select_items(ids, "full", seed=3)) == 500


def test_size_larger_than_data_is_an_error():
    with pytest.raises(DataError, match="larger than the 3 parallel items"):
        select_items({"a", "b", "c"}, 4, seed=0)


def test_parallel_composition_keeps_the_same_items_in_every_language(demo):
    rows = compose(demo, "ENDEFRITES", 30, seed=1)
    assert len(rows) == 150
    by_lang = {}
    for row in rows:
        by_lang.setdefault(row["lang"], []).append(row["id"])
    assert set(by_lang) == {"EN", "DE", "FR", "IT", "ES"}
    assert all(ids == by_lang["EN"] for ids in by_lang.values())
    german = next(row for row in rows if row["lang"] == "DE")
    assert german["messages"] == demo["DE"][german["id"]]


def test_monolingual_is_inside_parallel_and_sampled_is_size_matched(demo):
    mono = compose(demo, "DE", 40, seed=1)
    parallel = compose(demo, "ENDEFRITES", 40, seed=1)
    sampled = compose(demo, "ENDEFRITES_sampled", 40, seed=1)
    assert [r["id"] for r in mono] == [r["id"] for r in parallel if r["lang"] == "DE"]
    assert len(sampled) == len(mono) == 40
    assert [r["id"] for r in sampled] == [r["id"] for r in mono]  # same items, one language each
    assert len({r["lang"] for r in sampled}) >= 3
    assert compose(demo, "ENDEFRITES_sampled", 80, seed=1)[:40] == sampled  # nested, same languages


def test_formats_and_bad_rows():
    assert bactrian_messages({"instruction": "Sum", "input": "1 2", "output": "3"}, "x")[0]["content"] == "Sum\n\n1 2"
    assert [m["role"] for m in lima_messages({"conversations": ["q", "a", "q2", "a2", "q3"]}, "x")] == \
        ["user", "assistant", "user", "assistant"]
    with pytest.raises(DataError, match="row 7: field 'output'"):
        bactrian_messages({"instruction": "Sum", "output": " "}, "row 7")
    with pytest.raises(DataError, match="conversations"):
        lima_messages({"conversations": ["only a question"]}, "row 1")


def test_local_file_with_a_bad_row_names_file_and_row(tmp_path):
    for lang in ("EN", "DE"):
        rows = [{"id": "a", "instruction": "hi", "input": "", "output": "ho"}, {"id": "b", "instruction": "x"}]
        (tmp_path / f"{lang}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError, match=r"EN.jsonl row 1: field 'output'"):
        load_parallel({"format": "bactrian", "local": str(tmp_path / "{lang}.jsonl"), "id_field": "id"}, ("EN", "DE"))


def test_prepare_writes_chat_jsonl_and_manifest(tmp_path):
    spec = {"dataset": "demo", "source": SOURCE, "composition": "ENDE", "size": 25, "seed": 2}
    info = prepare(spec, tmp_path / "train.jsonl", tmp_path / "manifest.json")
    rows = read_jsonl(tmp_path / "train.jsonl")
    assert len(rows) == 50 and info["rows_per_language"] == {"DE": 25, "EN": 25}
    assert all(r["messages"][0]["role"] == "user" and r["messages"][1]["role"] == "assistant" for r in rows)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["sha256"] == info["sha256"] and manifest["seed"] == 2 and manifest["languages"] == ["EN", "DE"]
    again = prepare(spec, tmp_path / "again.jsonl", tmp_path / "again.json")
    assert again["sha256"] == info["sha256"]  # byte-identical rerun
