"""The study's base checkpoints in shape (tests/standins.py): no chat template, no pad token, code and a
slow tokenizer in the checkpoint. Prepared as the grid prepares them; asked in MT-Bench-X's `opengptx`
format byte for byte; trained to stop at their end-of-turn text; bad base models stop the config."""

import copy
import json
from pathlib import Path

import pytest
import yaml

from mlit.model.base import BaseModelError, prepare, sample_texts
from mlit.config import ConfigError, Grid
from mlit.files import read_jsonl, write_jsonl

from conftest import BENCH, LANGS, REPO, demo_config, snakemake

DEMO = demo_config()

# MT-Bench-X (Modalities/MT-Bench-X, commit f8972dc): get_prompt_by_language_code, verbatim
SYSTEM = {
    "EN": "A chat between a human and an artificial intelligence assistant.The assistant gives helpful and polite "
          "answers to the human's questions.",
    "DE": "Ein Gespräch zwischen einem Menschen und einem Assistenten mit künstlicher Intelligenz. Der Assistent gibt "
          "hilfreiche und höfliche Antworten auf die Fragen des Menschen.",
    "FR": "Conversation entre un humain et un assistant doté d'une intelligence artificielle. L'assistant donne des "
          "réponses utiles et polies aux questions de l'homme.",
    "IT": "Una chat tra un umano e un assistente di intelligenza artificiale. L'assistente fornisce risposte utili ed "
          "educate alle domande dell'uomo.",
    "ES": "Una conversación entre un humano y un asistente de inteligencia artificial. El asistente da respuestas "
          "útiles y amables a las preguntas del humano.",
}


def fastchat_colon_surround(system_message: str, messages: list[tuple[str, str | None]]) -> str:
    """FastChat's SeparatorStyle.COLON_SURROUND with the opengptx template (roles User/Assistant,
    sep "", sep2 "</s>"), rewritten from its definition: a message with text None is the open slot."""
    seps = ["", "</s>"]
    ret = "System: " + system_message
    for index, (role, text) in enumerate(messages):
        ret += "\n" + role + (": " + text + seps[index % 2] if text else ":")
    return ret


def spec(name, source, trust=False, template="opengptx"):
    return {"name": name, "source": str(source), "chat_template": template, "chat_template_key": "chat_template",
            "trust_remote_code": trust}


@pytest.fixture(scope="session")
def prepared(standins, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("prepared")
    samples = sample_texts(BENCH, LANGS)
    prepare(spec("mixtral", standins["mixtral"]), samples, root / "mixtral")
    prepare(spec("remote", standins["remote"], trust=True), samples, root / "remote")
    return {"mixtral": root / "mixtral", "remote": root / "remote"}


def test_the_mixtral_standin_is_prepared_without_a_new_token(prepared, standins):
    from transformers import AutoTokenizer

    info = json.loads((prepared["mixtral"] / "mlit_base.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(prepared["mixtral"])
    assert AutoTokenizer.from_pretrained(standins["mixtral"]).chat_template is None  # as the hub checkpoint
    assert len(tokenizer) == 32000 and info["vocabulary"] == 32000  # no vocabulary change
    assert info["end_of_turn_token_id"] == tokenizer.eos_token_id == 2 and info["chat_format"]["end_of_turn"] == "</s>"
    assert tokenizer.pad_token == "<unk>" and info["pad_token_from"] == "unk_token"
    assert (prepared["mixtral"] / "model.safetensors").is_symlink()  # weights linked, not copied
    # the end of every answer is trained: </s> closes each answer inside the assistant mask
    messages = [{"role": "user", "content": "Wie spät ist es?"}, {"role": "assistant", "content": "Spät."},
                {"role": "user", "content": "Und jetzt?"}, {"role": "assistant", "content": "Noch später."}]
    encoded = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
    trained = [t for t, m in zip(encoded["input_ids"], encoded["assistant_masks"]) if m]
    assert trained.count(2) == 2 and trained[-1] == 2
    assert tokenizer.decode([t for t in trained if t != 2]).split() == ["Spät.", "Noch", "später."]


def test_the_remote_code_standin_needs_the_flag_and_gets_a_checked_fast_tokenizer(prepared, standins, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with pytest.raises(BaseModelError, match=r"base_models\[remote\]\.trust_remote_code: .* auto_map"):
        prepare(spec("remote", standins["remote"], trust=False), sample_texts(BENCH, LANGS), tmp_path / "x")
    assert not (tmp_path / "x").exists()
    slow = AutoTokenizer.from_pretrained(standins["remote"], trust_remote_code=True)
    assert not slow.is_fast  # slow-only, code in the checkpoint
    info = json.loads((prepared["remote"] / "mlit_base.json").read_text())
    assert info["tokenizer_conversion"]["ids_checked_equal"] == {lang: 160 for lang in LANGS}
    fast = AutoTokenizer.from_pretrained(prepared["remote"])
    assert fast.is_fast and fast("Ein Gespräch über künstliche Intelligenz.")["input_ids"] == \
        slow("Ein Gespräch über künstliche Intelligenz.")["input_ids"]
    model = AutoModelForCausalLM.from_pretrained(prepared["remote"], trust_remote_code=True)
    assert type(model).__name__ == "PolyglotForCausalLM"


@pytest.mark.parametrize("lang", LANGS)
def test_prompts_equal_mt_bench_x_opengptx_rendering(prepared, lang):
    from mlit.generate.answers import Generator, first_turn

    generator = Generator(str(prepared["mixtral"]), max_new_tokens=4, batch_size=1)
    question = read_jsonl(BENCH / lang / "question.jsonl")[0]
    q1, q2 = question["turns"]
    turn1 = first_turn(question, lang, "question_language", generator.stop.system_messages)
    expected1 = fastchat_colon_surround(SYSTEM[lang], [("User", q1), ("Assistant", None)])
    assert generator.render(turn1) == "<s>" + expected1
    turn2 = turn1 + [{"role": "assistant", "content": "Eine Antwort."}, {"role": "user", "content": q2}]
    expected2 = fastchat_colon_surround(SYSTEM[lang], [("User", q1), ("Assistant", "Eine Antwort."), ("User", q2),
                                                        ("Assistant", None)])
    assert generator.render(turn2) == "<s>" + expected2
    # and the token ids equal FastChat's `tokenizer([prompt])` (BOS added by the tokenizer)
    for rendered, expected in ((generator.render(turn1), expected1), (generator.render(turn2), expected2)):
        ours = generator.tokenizer(rendered, add_special_tokens=False)["input_ids"]
        assert ours == generator.tokenizer(expected)["input_ids"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mixtral", "remote"])
def test_a_trained_standin_stops_at_its_end_of_turn(prepared, tmp_path, name):
    from mlit.generate.answers import Generator, answer_questions
    from mlit.train.sft import train

    rows = [{"lang": "DE", "messages": [{"role": "user", "content": f"Frage {i}: Kannst du mir helfen?"},
                                        {"role": "assistant", "content": "Ja, gerne."}]} for i in range(16)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    info = train(str(prepared[name]), str(tmp_path / "train.jsonl"), tmp_path / "model",
                 {"learning_rate": 3e-3, "num_train_epochs": 25, "per_device_train_batch_size": 16, "effective_batch_size": 16, "max_length": 128,
                  "logging_steps": 25, "save_steps": 10**6, "lr_scheduler_type": "constant"}, seed=0)
    assert info["truncation"]["DE"]["truncated_examples"] == 0 and info["system_message"] == "own_language"
    saved = json.loads((tmp_path / "model" / "mlit_base.json").read_text())
    assert saved["chat_format"]["name"] == "opengptx"  # the format travels with the fine-tuned model
    generator = Generator(str(tmp_path / "model"), max_new_tokens=24, batch_size=4)
    questions = [{"question_id": f"{i}_DE", "category": "math", "turns": [f"Frage {i}: Kannst du mir helfen?",
                                                                           "Noch einmal?"]} for i in range(4)]
    answers = answer_questions(generator, questions, tmp_path / "DE.jsonl", "m", seed=0, lang="DE")
    assert [row["choices"][0]["turns"][0] for row in answers] == ["Ja, gerne."] * 4
    # it stopped at </s>: far fewer than 24 new tokens per answer
    assert generator.generated_tokens < 8 * 24


def write_config(tmp_path, config) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def grid_with(base_model: dict, **top) -> dict:
    config = copy.deepcopy(DEMO)
    config["base_models"] = [config["base_models"][0], base_model]
    config.update(top)
    return config


def test_bad_base_models_are_config_errors_naming_the_key(standins, tmp_path):
    no_template = tmp_path / "no_markers.jinja"
    no_template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    cases = [
        ({"name": "m", "path": str(tmp_path / "missing")}, r"base_models\[m\]\.path: .*missing' does not exist"),
        ({"name": "m", "path": str(not_a_model)}, r"base_models\[m\]\.path: .* is not a model directory"),
        ({"name": "m", "path": str(standins["remote"])}, r"base_models\[m\]\.trust_remote_code: .* auto_map"),
        ({"name": "m", "path": str(standins["mixtral"]), "chat_template": str(no_template)},
         r"base_models\[m\]\.chat_template: .* no \{% generation %\} markers"),
        ({"name": "m", "path": str(standins["mixtral"]), "chat_template": "model"},
         r"base_models\[m\]\.chat_template: .* has no chat template"),
        ({"name": "m", "path": str(standins["mixtral"]), "chat_template": "chatml"},
         r"base_models\[m\]\.chat_template: 'chatml' is neither a preset"),
    ]
    for model, message in cases:
        with pytest.raises(ConfigError, match=message):
            Grid(grid_with(model), repo_root=REPO)
    with pytest.raises(ConfigError, match=r"^chat_template: .* no \{% generation %\} markers"):
        Grid(grid_with({"name": "m", "path": str(standins["mixtral"])}, chat_template=str(no_template)), repo_root=REPO)
    # a dry run plans a grid whose checkpoint is not here yet, with a warning
    grid = Grid(grid_with({"name": "m", "path": str(tmp_path / "missing")}), repo_root=REPO, dry_run=True)
    assert "base_models[m].path" in grid.warnings[0]
    # the real workflow stops before any job, naming the key
    result = snakemake(tmp_path, "--cores", "1", configfile=write_config(tmp_path, grid_with(
        {"name": "m", "path": str(standins["remote"])})), check=False)
    assert result.returncode != 0 and "base_models[m].trust_remote_code" in result.stderr
    assert not (tmp_path / "results").exists()


def test_packing_is_refused():
    config = copy.deepcopy(DEMO)
    config["training"]["packing"] = True
    with pytest.raises(ConfigError, match=r"base_models\[tiny-llama\]\.training\.packing: .*packed rows, not examples"):
        Grid(config, repo_root=REPO)


def test_a_hub_model_is_fetched_once_by_a_local_job_and_jobs_run_offline(tmp_path):
    config = grid_with({"name": "hubbed", "hub": "mistralai/Mixtral-8x7B-v0.1", "revision": "main"})
    plan = snakemake(tmp_path, "-n", "-p", configfile=write_config(tmp_path, config)).stdout
    assert "mlit fetch-model --hub mistralai/Mixtral-8x7B-v0.1 --revision main --out results/hub_models/hubbed" in plan
    assert "--out results/base_models/hubbed" in plan
    assert all("HF_HUB_OFFLINE=1" in line for line in plan.splitlines() if " -m mlit train " in line
               or " -m mlit generate " in line)
    localrules = (REPO / "Snakefile").read_text()
    assert "fetch_base_model," in localrules and "prepare_base_model," in localrules


def rigged_copy(model_dir: Path, out: Path, successors: dict[int, int]) -> Path:
    """A copy of the tiny base model whose greedy next token after token ``t`` is ``successors[t]``: every
    attention and MLP output is zeroed (the last hidden state is the current token's embedding), the
    embedding and output layer are untied, each token of ``successors`` has its own basis vector as its
    embedding and its successor's output row points along it. So greedy decoding follows a known chain."""
    import shutil

    import torch
    from transformers import AutoConfig, LlamaForCausalLM

    shutil.copytree(model_dir, out)
    config = AutoConfig.from_pretrained(out)
    assert config.tie_word_embeddings and len(successors) < config.hidden_size  # untied below; a vector each
    config.tie_word_embeddings = False
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.lm_head.weight.zero_()
        for index, (token, successor) in enumerate(successors.items()):
            model.model.embed_tokens.weight[token, index] = 1.0
            model.lm_head.weight[successor, index] = 10.0
    model.save_pretrained(out)
    return out


def chain_after(last_prompt_token: int, chain: list[int]) -> dict[int, int]:
    pairs = list(zip([last_prompt_token, *chain[:-1]], chain))
    assert len({token for token, _ in pairs}) == len(pairs), "each token of the chain once"
    return dict(pairs)


def test_a_multi_token_end_of_turn_stops_by_its_text(tiny_base_model, tmp_path):
    """An end of turn that is no token of the vocabulary (here `<|eot|>` in a Jinja template file): the
    answer ends at its *text* (a stop string in generate), and the answer is cut there. The model is
    rigged to say ` Hallo<|eot|>` and then go on: generation stops right after the end of turn."""
    from transformers import AutoTokenizer

    from mlit.generate.answers import Generator

    template = tmp_path / "eot.jinja"
    template.write_text("{% for message in messages %}{% if message['role'] == 'assistant' %}{{ 'Assistant:' }}"
                        "{% generation %}{{ ' ' + message['content'] + '<|eot|>' }}{% endgeneration %}{{ '\\n' }}"
                        "{% else %}{{ 'User: ' + message['content'] + '\\n' }}{% endif %}{% endfor %}"
                        "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    ids = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = "User: Hallo?\nAssistant:"
    answer, more = ids(" Hallo") + ids("<|eot|>"), ids("\nNoch mehr Worte")
    assert len(ids("<|eot|>")) > 1  # several tokens: only the text can stop it
    model = rigged_copy(tiny_base_model, tmp_path / "rigged", chain_after(ids(prompt)[-1], answer + more))
    info = prepare({**spec("tiny", model), "chat_template": str(template)}, sample_texts(BENCH, LANGS),
                   tmp_path / "tiny")
    assert info["end_of_turn_token_id"] is None and info["chat_format"]["end_of_turn"] == "<|eot|>"
    generator = Generator(str(tmp_path / "tiny"), max_new_tokens=len(answer) + len(more), batch_size=2)
    assert generator.stop.stop_strings == ["<|eot|>"] and generator.stop.cut(" Hallo<|eot|>\nUser: x") == "Hallo"
    assert generator.render([{"role": "user", "content": "Hallo?"}]) == prompt
    # the new tokens: the answer up to the last token of the end of turn, none after it
    assert generator.new_token_ids([ids(prompt)], 0.0, 0, generator.max_new_tokens) == [answer]
    assert generator.generate([prompt], temperature=0.0, seed=0) == ["Hallo"]
    assert generator.generated_tokens == len(answer) < generator.max_new_tokens


def test_the_demo_tokenizer_ends_an_opengptx_answer_with_one_token(tiny_base_model, tmp_path):
    """`</s>` is one token of the demo tokenizer: generation stops at that token (the model is rigged to say
    ` Hallo</s>` and then go on), and the answer is the text before it."""
    from transformers import AutoTokenizer

    from mlit.generate.answers import Generator

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    ids = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompt = "User: Hallo?\nAssistant:"
    end = tokenizer.convert_tokens_to_ids("</s>")
    answer, more = ids(" Hallo") + [end], ids("\nNoch mehr Worte")
    model = rigged_copy(tiny_base_model, tmp_path / "rigged", chain_after(ids(prompt)[-1], answer + more))
    info = prepare(spec("tiny", model), sample_texts(BENCH, LANGS), tmp_path / "tiny")
    assert info["chat_format"]["end_of_turn"] == "</s>" and info["end_of_turn_token_id"] == end
    generator = Generator(str(tmp_path / "tiny"), max_new_tokens=len(answer) + len(more), batch_size=2)
    assert generator.stop.stop_strings == [] and end in generator.stop.stop_token_ids
    assert generator.render([{"role": "user", "content": "Hallo?"}]) == prompt  # no BOS from this tokenizer
    # both rows stop right after `</s>`: that many new tokens, not max_new_tokens
    assert generator.new_token_ids([ids(prompt)] * 2, 0.0, 1, generator.max_new_tokens) == [answer, answer]
    assert generator.generate([prompt, prompt], temperature=0.0, seed=1) == ["Hallo", "Hallo"]
    assert generator.generated_tokens == 2 * len(answer) < 2 * generator.max_new_tokens


@pytest.mark.slow
def test_prepared_inputs_changed_in_place_are_picked_up_or_stop_the_grid(tmp_path, tiny_base_model):
    """A chat template file not named *.jinja is hashed into the prepare step (an edit prepares the model
    again), and a local checkpoint whose config.json changes after preparation stops the next start with a
    message naming the key and the files (main: 'Nothing to be done' for both, old and new weights mixed)."""
    import shutil

    from mlit.model.chat_format import opengptx_template

    from conftest import job_counts

    model_dir = tmp_path / "checkpoint"
    shutil.copytree(tiny_base_model, model_dir)
    template = tmp_path / "format.tmpl"  # a Jinja template under another name
    template.write_text(opengptx_template(True))
    config = copy.deepcopy(DEMO)
    config.update(compositions=["EN"], sizes=[8], eval_languages=["EN"])
    config["base_models"] = [{"name": "local-model", "path": str(model_dir), "chat_template": str(template)}]
    config["judge"] = {"model": "x", "base_url": "http://127.0.0.1:9/v1"}
    workdir = tmp_path / "work"
    workdir.mkdir()
    configfile = workdir / "config.yaml"
    configfile.write_text(yaml.safe_dump(config))
    target = "results/base_models/local-model"
    snakemake(workdir, "--cores", "1", target, configfile=configfile)
    assert "Nothing to be done" in snakemake(workdir, "-n", target, configfile=configfile).stdout

    template.write_text(opengptx_template(True) + "{# edited #}")
    assert job_counts(snakemake(workdir, "-n", target, configfile=configfile).stdout).get("prepare_base_model") == 1

    settings = json.loads((model_dir / "config.json").read_text())
    (model_dir / "config.json").write_text(json.dumps({**settings, "rope_theta": 1.0}))  # changed in place
    stopped = snakemake(workdir, "-n", target, configfile=configfile, check=False)
    assert stopped.returncode != 0
    assert (f"base_models[local-model].path: the checkpoint {model_dir} changed after it was prepared (config.json "
            "differ from results/base_models/local-model/mlit_base.json)") in stopped.stdout + stopped.stderr
    assert "delete results/base_models/local-model to prepare it again" in stopped.stdout + stopped.stderr


def test_a_slow_to_fast_conversion_whose_ids_differ_is_refused(standins):
    """A slow tokenizer that does more than its sentencepiece model (here: lower-cases the text) converts to
    a fast tokenizer with other ids: refused, naming the language and both id lists."""
    from transformers import AutoTokenizer

    from mlit.model.base import convert_to_fast

    slow = AutoTokenizer.from_pretrained(standins["remote"], trust_remote_code=True)

    class LowercasingTokenizer(type(slow)):
        def _tokenize(self, text, **kwargs):
            return super()._tokenize(text.lower(), **kwargs)

    lowering = LowercasingTokenizer(vocab_file=str(standins["remote"] / "tokenizer.model"))
    text = "Ein Gespräch über Künstliche Intelligenz."
    assert lowering(text)["input_ids"] != slow(text)["input_ids"]
    _, counts = convert_to_fast(slow, {"DE": [text]}, standins["remote"])  # the plain one converts
    assert counts == {"DE": 1}
    with pytest.raises(BaseModelError, match=r"the converted fast tokenizer differs from the slow one on a DE text "
                                             r"\('Ein Gespräch.*slow \[.*fast \[.*provide a tokenizer\.json"):
        convert_to_fast(lowering, {"EN": ["a chat"], "DE": [text]}, standins["remote"])


def test_a_hub_fetch_takes_one_weights_format_and_what_loads_it():
    """Mixtral's repository: safetensors shards plus consolidated.*.pt (the original release, about 97 GB)
    that transformers never reads; a repository with only .bin weights gets those."""
    from fnmatch import fnmatch

    from mlit.model.base import fetch_patterns

    mixtral = ["config.json", "generation_config.json", "model.safetensors.index.json", "tokenizer.json",
               "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "README.md", ".gitattributes",
               *[f"model-{i:05d}-of-00019.safetensors" for i in range(1, 20)],
               *[f"consolidated.{i:02d}.pt" for i in range(8)], "params.json"]
    patterns = fetch_patterns(mixtral)
    fetched = sorted(name for name in mixtral if any(fnmatch(name, pattern) for pattern in patterns))
    assert not any(name.startswith("consolidated.") for name in fetched)
    assert {"config.json", "model.safetensors.index.json", "tokenizer.json", "tokenizer.model"} <= set(fetched)
    assert sum(name.endswith(".safetensors") for name in fetched) == 19
    remote_code = ["config.json", "modeling_custom.py", "tokenizer.model", "pytorch_model-00001-of-00002.bin",
                   "pytorch_model-00002-of-00002.bin", "pytorch_model.bin.index.json", "optimizer.pt"]
    fetched = {name for name in remote_code if any(fnmatch(name, p) for p in fetch_patterns(remote_code))}
    assert fetched == set(remote_code) - {"optimizer.pt"}  # the code and the .bin weights, not training state
