"""The study's prompt formats as presets, each byte for byte against its MT-Bench-X commit's rendering
(turns 1 and 2, five languages), and MT-Bench-X's choice of template by model id.

The reference renderers below are written from the definitions (FastChat's ``COLON_SURROUND`` and
``LLAMA2`` separator styles as MT-Bench-X's ``conversation.py`` has them, see
/work/shared/notes/study-models-and-prompt-format.md), not from mlit's Jinja templates."""

import copy

import pytest

from mlit.config import ConfigError, Grid
from mlit.files import read_jsonl
from mlit.model.base import prepare, sample_texts

from conftest import BENCH, LANGS, REPO, demo_config
from test_base_models import SYSTEM as SYSTEM_2024_09

# get_prompt_by_language_code's messages (test_base_models.SYSTEM: commit 228365c onwards, verbatim); EN differs
# between the two commits (a space after the first stop)
SYSTEM_2024_08 = {**SYSTEM_2024_09, "EN": "A chat between a human and an artificial intelligence assistant. The "
                  "assistant gives helpful and polite answers to the human's questions."}

# (sep, sep2, system messages) of the opengptx conversation at each commit
COMMITS = {"opengptx_2024_08": ("<s>", "</s>", SYSTEM_2024_08),    # 6f203ca, 2024-08-15
           "opengptx_2024_09": ("", "</s>", SYSTEM_2024_09)}       # 228365c, 2024-09-27 (MT-Bench-X's head)


def colon_surround(sep: str, sep2: str, system_message: str, messages: list[tuple[str, str | None]]) -> str:
    """COLON_SURROUND: the system prompt ``System: <msg>``; a user turn adds ``\\n<role>: <text>``, an
    answered assistant turn ``\\n<role>:<sep> <text><sep2>``, the open slot ``\\n<role>:<sep>``."""
    out = "System: " + system_message
    for role, text in messages:
        if role == "Assistant":
            out += f"\n{role}:{sep}" + (f" {text}{sep2}" if text else "")
        else:
            out += f"\n{role}: {text}"
    return out


def llama2_mistral(messages: list[str | None]) -> str:
    """FastChat's ``mistral`` conversation (LLAMA2 style, roles [INST]/[/INST], sep " ", sep2 "</s>", no
    system message): "[INST] " then message 0 + " "; later messages add role + " " + text + sep;
    the open slot adds the role."""
    out, roles, seps = "[INST] ", ("[INST]", "[/INST]"), (" ", "</s>")
    for index, text in enumerate(messages):
        if text is None:
            out += roles[index % 2]
        elif index == 0:
            out += text + " "
        else:
            out += roles[index % 2] + " " + text + seps[index % 2]
    return out


@pytest.fixture(scope="module")
def prepared(standins, tmp_path_factory):
    root = tmp_path_factory.mktemp("formats")
    samples = sample_texts(BENCH, LANGS)
    for preset in (*COMMITS, "fastchat_mistral"):
        prepare({"name": "mixtral", "source": str(standins["mixtral"]), "chat_template": preset,
                 "chat_template_key": "chat_template", "trust_remote_code": False}, samples, root / preset)
    return {preset: root / preset for preset in (*COMMITS, "fastchat_mistral")}


@pytest.fixture(scope="module")
def generators(prepared):
    from mlit.generate.answers import Generator

    return {preset: Generator(str(path), max_new_tokens=4, batch_size=1) for preset, path in prepared.items()}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("preset", list(COMMITS))
def test_each_opengptx_preset_equals_its_commits_rendering(generators, preset, lang):
    from mlit.generate.answers import first_turn

    generator = generators[preset]
    sep, sep2, system = COMMITS[preset]
    q1, q2 = read_jsonl(BENCH / lang / "question.jsonl")[0]["turns"]
    turn1 = first_turn({"turns": [q1, q2]}, lang, "question_language", generator.stop.system_messages)
    turn2 = turn1 + [{"role": "assistant", "content": "Eine Antwort."}, {"role": "user", "content": q2}]
    expected1 = colon_surround(sep, sep2, system[lang], [("User", q1), ("Assistant", None)])
    expected2 = colon_surround(sep, sep2, system[lang], [("User", q1), ("Assistant", "Eine Antwort."),
                                                          ("User", q2), ("Assistant", None)])
    for messages, expected in ((turn1, expected1), (turn2, expected2)):
        rendered = generator.render(messages)
        assert rendered == "<s>" + expected  # FastChat's tokenizer([prompt]) adds the BOS
        # the same token ids as FastChat's tokenizer([prompt]) (BOS added by the tokenizer)
        assert generator.tokenizer(rendered, add_special_tokens=False)["input_ids"] == \
            generator.tokenizer(expected)["input_ids"]
    if preset == "opengptx_2024_08":  # the paper-era prompt ends with <s>, the BOS token of this tokenizer
        assert expected1.endswith("\nAssistant:<s>") and "\nAssistant:<s> Eine Antwort.</s>\n" in expected2
        ids = generator.tokenizer(generator.render(turn1), add_special_tokens=False)["input_ids"]
        assert ids[-1] == generator.tokenizer.bos_token_id


def test_the_two_opengptx_presets_differ_where_the_commits_do(generators):
    """The facts the presets encode: only EN's system message and the separator after 'Assistant:'."""
    old, new = generators["opengptx_2024_08"].stop.system_messages, generators["opengptx_2024_09"].stop.system_messages
    assert [lang for lang in LANGS if old[lang] != new[lang]] == ["EN"]
    assert old["EN"].replace("assistant. The", "assistant.The") == new["EN"]
    messages = [{"role": "user", "content": "Hallo?"}]
    assert generators["opengptx_2024_08"].render(messages).endswith("Assistant:<s>")
    assert generators["opengptx_2024_09"].render(messages).endswith("Assistant:")


@pytest.mark.parametrize("lang", ["EN", "DE"])
def test_fastchat_mistral_equals_fastchats_llama2_rendering(generators, prepared, lang):
    from mlit.generate.answers import first_turn

    generator = generators["fastchat_mistral"]
    assert generator.stop.system_messages == {}  # FastChat's mistral template has none
    q1, q2 = read_jsonl(BENCH / lang / "question.jsonl")[0]["turns"]
    turn1 = first_turn({"turns": [q1, q2]}, lang, "question_language", generator.stop.system_messages)
    turn2 = turn1 + [{"role": "assistant", "content": "Eine Antwort."}, {"role": "user", "content": q2}]
    assert generator.render(turn1) == "<s>" + llama2_mistral([q1, None])
    assert generator.render(turn2) == "<s>" + llama2_mistral([q1, "Eine Antwort.", q2, None])
    assert generator.render(turn2) == f"<s>[INST] {q1} [/INST] Eine Antwort.</s>[INST] {q2} [/INST]"
    # the answer and its </s> are what training learns
    tokenizer = generator.tokenizer
    encoded = tokenizer.apply_chat_template(turn2[:2], tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"]) if m]
    assert trained[-1] == tokenizer.eos_token_id and tokenizer.decode(trained[:-1]).strip() == "Eine Antwort."


def grid_config(**models) -> dict:
    config = copy.deepcopy(demo_config())
    config["base_models"] = [config["base_models"][0], *models.values()]
    return config


def test_by_model_id_follows_mt_bench_xs_rule(standins, tmp_path):
    config = grid_config(m={"name": "mixtral-8x7b", "path": str(standins["mixtral"]), "chat_template": "by_model_id"})
    config["chat_template"] = "opengptx_2024_08"
    grid = Grid(config, repo_root=REPO)
    assert grid.chat_template_setting("mixtral-8x7b") == ("fastchat_mistral", "base_models[mixtral-8x7b].chat_template")
    assert grid.base_model_spec("mixtral-8x7b")["chat_template"] == "fastchat_mistral"
    # an opengptx id gets the grid's opengptx preset; the hub id counts before the name
    config["base_models"][1] = {"name": "opengptx-7b", "path": str(standins["mixtral"]), "chat_template": "by_model_id"}
    assert Grid(config, repo_root=REPO).chat_template_setting("opengptx-7b")[0] == "opengptx_2024_08"
    config["base_models"][1] = {"name": "big", "hub": "mistralai/Mixtral-8x7B-v0.1", "chat_template": "by_model_id"}
    assert Grid(config, repo_root=REPO, dry_run=True).chat_template_setting("big")[0] == "fastchat_mistral"
    # any other id: FastChat's template for it is not implemented, so the config stops, naming the key
    config["base_models"][1] = {"name": "falcon-7b", "path": str(standins["mixtral"]), "chat_template": "by_model_id"}
    with pytest.raises(ConfigError, match=r"base_models\[falcon-7b\]\.chat_template: by_model_id: .*'falcon-7b'"):
        Grid(config, repo_root=REPO)


@pytest.mark.parametrize("preset", list(COMMITS))
def test_the_7b_standins_ids_equal_mt_bench_xs_slow_tokenizer(standins, tmp_path, preset):
    """The study's 7B model in shape (code and a slow-only sentencepiece tokenizer in the checkpoint,
    converted to a fast one by prepare): our ids of each rendered prompt equal those of MT-Bench-X's
    `tokenizer([prompt])` with the checkpoint's own slow tokenizer, the paper-era `<s>` after
    'Assistant:' included."""
    from transformers import AutoTokenizer

    from mlit.generate.answers import first_turn

    info = prepare({"name": "remote", "source": str(standins["remote"]), "chat_template": preset,
                    "chat_template_key": "chat_template", "trust_remote_code": True}, sample_texts(BENCH, LANGS),
                   tmp_path / "remote")
    fast = AutoTokenizer.from_pretrained(tmp_path / "remote")
    slow = AutoTokenizer.from_pretrained(standins["remote"], use_fast=False, trust_remote_code=True)
    sep, sep2, system = COMMITS[preset]
    system_messages = info["chat_format"]["system_messages"]  # the preset's, as generation reads them
    for lang in LANGS:
        q1, q2 = read_jsonl(BENCH / lang / "question.jsonl")[1]["turns"]
        turn1 = first_turn({"turns": [q1, q2]}, lang, "question_language", system_messages)
        turn2 = turn1 + [{"role": "assistant", "content": "Una risposta."}, {"role": "user", "content": q2}]
        for messages, history in ((turn1, [("User", q1), ("Assistant", None)]),
                                  (turn2, [("User", q1), ("Assistant", "Una risposta."), ("User", q2),
                                           ("Assistant", None)])):
            expected = colon_surround(sep, sep2, system[lang], history)
            rendered = fast.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            assert rendered == "<s>" + expected
            ids = slow([expected])["input_ids"][0]
            assert fast(rendered, add_special_tokens=False)["input_ids"] == ids
            if sep == "<s>":  # the paper-era prompt ends with the BOS token, as MT-Bench-X's tokenizer reads it
                assert ids[-1] == slow.bos_token_id and ids.count(slow.bos_token_id) == 1 + len(history) // 2
