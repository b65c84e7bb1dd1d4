import json

import pytest

from mlit.data.instructions import DataError, bactrian_messages, compose, lima_messages, load_parallel, prepare, select_items
from mlit.files import read_jsonl

from conftest import DEMO_DATA, demo_config

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


# --- composed_configs: Lima-X's own composed configs (DE_FR_IT_ES, DE_FR_IT_ES_sampled, ...) ---

TEXTS = {  # item -> language -> (question, answer), long enough for language detection
    0: {"EN": ("How do I keep bread fresh for longer?", "Store it in a paper bag in a cool, dry place and freeze what you will not eat within two days."),
        "DE": ("Wie bleibt Brot länger frisch?", "Bewahre es in einer Papiertüte an einem kühlen, trockenen Ort auf und friere ein, was du nicht innerhalb von zwei Tagen isst."),
        "FR": ("Comment garder le pain frais plus longtemps ?", "Conservez-le dans un sac en papier dans un endroit frais et sec, et congelez ce que vous ne mangerez pas dans les deux jours."),
        "IT": ("Come si mantiene il pane fresco più a lungo?", "Conservalo in un sacchetto di carta in un luogo fresco e asciutto e congela quello che non mangerai entro due giorni."),
        "ES": ("¿Cómo mantengo el pan fresco durante más tiempo?", "Guárdalo en una bolsa de papel en un lugar fresco y seco, y congela lo que no vayas a comer en dos días.")},
    1: {"EN": ("Why is the sky blue during the day?", "Sunlight is scattered by the molecules of the air, and blue light is scattered much more than red light."),
        "DE": ("Warum ist der Himmel tagsüber blau?", "Das Sonnenlicht wird an den Molekülen der Luft gestreut, und blaues Licht wird viel stärker gestreut als rotes Licht."),
        "FR": ("Pourquoi le ciel est-il bleu pendant la journée ?", "La lumière du soleil est diffusée par les molécules de l'air, et la lumière bleue est beaucoup plus diffusée que la rouge."),
        "IT": ("Perché il cielo è azzurro durante il giorno?", "La luce del sole viene diffusa dalle molecole dell'aria, e la luce blu viene diffusa molto più della luce rossa."),
        "ES": ("¿Por qué el cielo es azul durante el día?", "La luz del sol se dispersa en las moléculas del aire, y la luz azul se dispersa mucho más que la luz roja.")},
    2: {"EN": ("What should I pack for a weekend hike in the mountains?", "Bring sturdy shoes, a rain jacket, enough water, some food and a map of the area you are walking in."),
        "DE": ("Was sollte ich für eine Wochenendwanderung in den Bergen einpacken?", "Nimm feste Schuhe, eine Regenjacke, genug Wasser, etwas zu essen und eine Karte der Gegend mit, in der du wanderst."),
        "FR": ("Que dois-je emporter pour une randonnée d'un week-end en montagne ?", "Prenez de bonnes chaussures, une veste de pluie, assez d'eau, de quoi manger et une carte de la région où vous marchez."),
        "IT": ("Cosa dovrei portare per un'escursione di un fine settimana in montagna?", "Porta scarpe robuste, una giacca impermeabile, acqua a sufficienza, qualcosa da mangiare e una mappa della zona in cui cammini."),
        "ES": ("¿Qué debo llevar para una excursión de fin de semana en la montaña?", "Lleva zapatos resistentes, una chaqueta para la lluvia, suficiente agua, algo de comida y un mapa de la zona por la que caminas.")},
    3: {"EN": ("How can I learn a new language quickly?", "Practise a little every day, speak with native speakers as often as you can and read simple books that you enjoy."),
        "DE": ("Wie kann ich schnell eine neue Sprache lernen?", "Übe jeden Tag ein wenig, sprich so oft wie möglich mit Muttersprachlern und lies einfache Bücher, die dir gefallen."),
        "FR": ("Comment puis-je apprendre rapidement une nouvelle langue ?", "Exercez-vous un peu chaque jour, parlez aussi souvent que possible avec des locuteurs natifs et lisez des livres simples qui vous plaisent."),
        "IT": ("Come posso imparare velocemente una nuova lingua?", "Esercitati un po' ogni giorno, parla il più spesso possibile con persone madrelingua e leggi libri semplici che ti piacciono."),
        "ES": ("¿Cómo puedo aprender rápidamente un idioma nuevo?", "Practica un poco cada día, habla con hablantes nativos tan a menudo como puedas y lee libros sencillos que te gusten.")},
}
SAMPLED_LANGS = ["FR", "ES", "DE", "IT"]  # the language of item i in DE_FR_IT_ES_sampled (the "authors' draw")


def lima_rows(lang: str) -> list[dict]:
    return [{"conversations": list(TEXTS[i][lang]), "source": "test"} for i in sorted(TEXTS)]


def write_rows(path, rows):
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


@pytest.fixture
def lima_x(tmp_path):
    """Lima-X's layout as local files: EN..ES, DE_FR_IT_ES (concatenated) and DE_FR_IT_ES_sampled."""
    for lang in ("EN", "DE", "FR", "IT", "ES"):
        write_rows(tmp_path / f"{lang}.jsonl", lima_rows(lang))
    write_rows(tmp_path / "DE_FR_IT_ES.jsonl", [row for lang in ("DE", "FR", "IT", "ES") for row in lima_rows(lang)])
    write_rows(tmp_path / "DE_FR_IT_ES_sampled.jsonl",
               [{"conversations": list(TEXTS[i][lang])} for i, lang in enumerate(SAMPLED_LANGS)])
    return {"format": "lima", "local": str(tmp_path / "{lang}.jsonl"), "id_field": None, "split": "train",
            "num_examples": len(TEXTS), "composed_configs": True}


def composed_spec(source, composition):
    return {"dataset": "lima_x", "source": source, "composition": composition, "size": "full", "seed": 42}


def test_composed_parallel_config_gets_block_languages(lima_x, tmp_path):
    info = prepare(composed_spec(lima_x, "DEFRITES"), tmp_path / "train.jsonl", tmp_path / "manifest.json")
    rows = read_jsonl(tmp_path / "train.jsonl")
    assert [row["lang"] for row in rows] == [lang for lang in ("DE", "FR", "IT", "ES") for _ in TEXTS]
    assert [row["id"] for row in rows] == [str(i) for _ in range(4) for i in sorted(TEXTS)]
    assert rows[len(TEXTS)]["messages"][0]["content"] == TEXTS[0]["FR"][0]  # first row of the FR block
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest == info
    assert manifest["file"] == str(tmp_path / "DE_FR_IT_ES.jsonl") and manifest["split"] is None
    assert manifest["rows_read"] == manifest["rows_expected"] == manifest["n_rows"] == 4 * len(TEXTS)
    assert manifest["lang_from"] == "block" and manifest["n_items"] == len(TEXTS)
    assert manifest["block_languages_detected"] == {lang: {"sampled": len(TEXTS), "agreeing": len(TEXTS)}
                                                    for lang in ("DE", "FR", "IT", "ES")}
    assert manifest["rows_per_language"] == {lang: len(TEXTS) for lang in ("DE", "ES", "FR", "IT")}


def test_a_composed_config_in_another_order_is_refused(lima_x, tmp_path):
    """DE_FR_IT_ES whose blocks are in another order (FR first): detected on a sample, it stops data
    preparation naming the config, instead of training 3 in 4 rows with the wrong language label."""
    shuffled = ("FR", "DE", "IT", "ES")
    write_rows(tmp_path / "DE_FR_IT_ES.jsonl", [row for lang in shuffled for row in lima_rows(lang)])
    with pytest.raises(DataError, match=r"DE_FR_IT_ES.jsonl: rows 0-3 are assumed to be DE \(block 1 of "
                                        r"\['DE', 'FR', 'IT', 'ES'\].*read as FR.*datasets.lima_x.composed_configs"):
        prepare(composed_spec(lima_x, "DEFRITES"), tmp_path / "train.jsonl", tmp_path / "manifest.json")
    assert not (tmp_path / "train.jsonl").exists()


def test_composed_sampled_config_gets_detected_languages(lima_x, tmp_path):
    info = prepare(composed_spec(lima_x, "DEFRITES_sampled"), tmp_path / "train.jsonl", tmp_path / "manifest.json")
    rows = read_jsonl(tmp_path / "train.jsonl")
    assert [row["lang"] for row in rows] == SAMPLED_LANGS  # detected, restricted to DE FR IT ES
    assert [row["messages"][1]["content"] for row in rows] == [TEXTS[i][lang][1] for i, lang in enumerate(SAMPLED_LANGS)]
    assert info["lang_from"] == "detected" and info["rows_read"] == info["rows_expected"] == len(TEXTS)
    assert info["source"] == {"DE_FR_IT_ES_sampled": str(tmp_path / "DE_FR_IT_ES_sampled.jsonl")}


def test_composed_monolingual_loads_as_before_and_is_counted(lima_x, tmp_path):
    info = prepare(composed_spec(lima_x, "IT"), tmp_path / "train.jsonl", tmp_path / "manifest.json")
    plain = compose(load_parallel(lima_x, ("IT",)), "IT", "full", 42)
    assert read_jsonl(tmp_path / "train.jsonl") == plain
    assert info["file"] == str(tmp_path / "IT.jsonl") and info["rows_read"] == info["rows_expected"] == len(TEXTS)


def test_composed_row_count_mismatch_names_source_and_key(lima_x, tmp_path):
    source = {**lima_x, "num_examples": 5}
    with pytest.raises(DataError, match=r"DE_FR_IT_ES.jsonl: read 16 rows, expected 20 "
                                        r"\(datasets.lima_x.num_examples = 5 x 4 languages\)"):
        prepare(composed_spec(source, "DEFRITES"), tmp_path / "a.jsonl", tmp_path / "a.json")
    with pytest.raises(DataError, match=r"DE_FR_IT_ES_sampled.jsonl: read 4 rows, expected 5 .*datasets.lima_x.num_examples"):
        prepare(composed_spec(source, "DEFRITES_sampled"), tmp_path / "b.jsonl", tmp_path / "b.json")
    with pytest.raises(DataError, match=r"ES.jsonl: read 4 rows, expected 5 .*datasets.lima_x.num_examples"):
        prepare(composed_spec(source, "ES"), tmp_path / "c.jsonl", tmp_path / "c.json")
    unchecked = prepare(composed_spec({**lima_x, "num_examples": None}, "DEFRITES"), tmp_path / "d.jsonl", tmp_path / "d.json")
    assert unchecked["rows_read"] == 16 and unchecked["rows_expected"] is None


def test_composed_hub_layout_honours_split(tmp_path):
    """A local dataset repository in the hub's layout (configs and splits in its card), loaded as a hub id."""
    repo = tmp_path / "Lima-X"
    repo.mkdir()
    card = ["---", "configs:"]
    for name, langs in (("DE_FR_IT_ES", ("DE", "FR", "IT", "ES")), ("EN", ("EN",))):
        card += [f"- config_name: {name}", "  data_files:"]
        for split, items in (("train", sorted(TEXTS)), ("val", [3])):
            write_rows(repo / f"{split}_limax_{name}.jsonl",
                       [{"conversations": list(TEXTS[i][lang])} for lang in langs for i in items])
            card += [f"  - split: {split}", f"    path: {split}_limax_{name}.jsonl"]
    (repo / "README.md").write_text("\n".join(card + ["---", ""]))
    source = {"format": "lima", "hub": str(repo), "config": "{lang}", "split": "val", "id_field": None,
              "num_examples": 1, "composed_configs": True}
    info = prepare(composed_spec(source, "DEFRITES"), tmp_path / "train.jsonl", tmp_path / "manifest.json")
    rows = read_jsonl(tmp_path / "train.jsonl")
    assert [(row["lang"], row["messages"][0]["content"]) for row in rows] == \
        [(lang, TEXTS[3][lang][0]) for lang in ("DE", "FR", "IT", "ES")]
    assert {key: info[key] for key in ("hub_config", "split", "rows_read", "rows_expected", "lang_from")} == \
        {"hub_config": "DE_FR_IT_ES", "split": "val", "rows_read": 4, "rows_expected": 4, "lang_from": "block"}
    info = prepare(composed_spec(source, "EN"), tmp_path / "en.jsonl", tmp_path / "en.json")
    assert info["hub_config"] == "EN" and info["split"] == "val" and info["rows_read"] == 1
    with pytest.raises(DataError, match=r"Lima-X\[DE_FR_IT_ES\] \(split train\): read 16 rows, expected 4"):
        prepare(composed_spec({**source, "split": "train"}, "DEFRITES"), tmp_path / "t.jsonl", tmp_path / "t.json")


def test_grid_allows_only_full_for_composed_datasets(lima_x):
    import copy


    from conftest import REPO
    from mlit.config import ConfigError, Grid

    config = demo_config()
    source = {key: value for key, value in lima_x.items() if key != "split"}
    config["datasets"]["lima_x"] = {**source, "sizes": [40, "full"]}
    with pytest.raises(ConfigError, match=r"datasets.lima_x.sizes: \[40, 'full'\] with composed_configs: true.*only "
                                          r"'full' is allowed; set datasets.lima_x.sizes: \[full\]"):
        Grid(copy.deepcopy(config), repo_root=REPO)
    del config["datasets"]["lima_x"]["sizes"]  # the global sizes [40, 160] apply: same error
    with pytest.raises(ConfigError, match=r"datasets.lima_x.sizes: \[40, 160\]"):
        Grid(copy.deepcopy(config), repo_root=REPO)
    config["datasets"]["lima_x"]["sizes"] = ["full"]
    grid = Grid(config, repo_root=REPO)
    data_id = "lima_x__ENDEFRITES_sampled__full__seed1"
    assert grid.data_inputs(data_id) == [lima_x["local"].format(lang="EN_DE_FR_IT_ES_sampled")]
    assert grid.data_inputs("lima_x__DE__full__seed1") == [lima_x["local"].format(lang="DE")]
    assert grid.data_spec(data_id)["source"]["composed_configs"] is True
    assert "composed_configs" not in grid.data_spec("demo__EN__40__seed1")["source"]
    assert grid.cell_fields(f"tiny-llama__{data_id}")["examples_per_language"] == len(TEXTS)
    spec = grid.data_spec("lima_x__DE__full__seed1")  # the spec the workflow hands to prepare-data
    assert prepare(spec, lima_x["local"].format(lang="out"), lima_x["local"].format(lang="out_manifest"))["rows_read"] == 4
