"""The chat format a base model is fine-tuned and asked in: its Jinja template, the text that ends
each answer (trained, and the stop condition at generation) and the system messages per language.

``chat_template`` (global, or per base model) is one of
- a preset name (``PRESETS``):
  - ``opengptx_2024_08``: MT-Bench-X's ``opengptx`` conversation as first published (commit 6f203ca,
    2024-08-15, the nearest to the paper): FastChat ``COLON_SURROUND`` with sep ``<s>``, sep2 ``</s>``, so a
    prompt ends ``\nAssistant:<s>`` and an answered turn reads ``\nAssistant:<s> <answer></s>``; the
    English system message has a space after its first full stop;
  - ``opengptx_2024_09``: the same conversation since commit 228365c (2024-09-27, Teuken era, still
    MT-Bench-X's head): sep ``""`` (``\nAssistant:`` / ``\nAssistant: <answer></s>``), the English system
    message without that space; ``opengptx`` is another name for it (the name MT-Bench-X registers);
  - ``fastchat_mistral``: FastChat's ``mistral`` conversation (``LLAMA2`` style, ``[INST] q [/INST] a</s>``),
    what MT-Bench-X's ``get_conversation_template`` gives a model id containing ``mistral`` or ``mixtral``;
- ``by_model_id``: MT-Bench-X's rule, the template chosen by the model's id (``template_for_model_id``);
- ``model``: keep the template the checkpoint brings (it must mark answers with generation markers);
- a path to a Jinja file (with ``{% generation %}`` markers).

Every template marks each answer *and its end-of-turn text* with ``{% generation %}`` so that TRL's
assistant-only loss trains the model to stop there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

GENERATION_MARKER = re.compile(r"\{%-?\s*generation\s*-?%\}")

# MT-Bench-X (Modalities/MT-Bench-X, src/mtbenchx/fastchat/conversation.py, get_prompt_by_language_code):
# the system message of the question's language, verbatim (EN has no space after the first full stop).
OPENGPTX_SYSTEM_MESSAGES = {
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
# MT-Bench-X at 6f203ca (2024-08-15): the same messages, but English with a space after the first full stop
OPENGPTX_2024_08_SYSTEM_MESSAGES = {
    **OPENGPTX_SYSTEM_MESSAGES,
    "EN": "A chat between a human and an artificial intelligence assistant. The assistant gives helpful and polite "
          "answers to the human's questions.",
}


def opengptx_template(with_bos: bool, sep: str = "") -> str:
    """FastChat's ``COLON_SURROUND`` rendering of the ``opengptx`` conversation: ``System: <msg>``, then
    ``\\nUser: <q>`` and ``\\nAssistant:<sep> <a></s>`` per message, ``\\nAssistant:<sep>`` to generate
    (``sep`` is ``""`` since MT-Bench-X's commit 228365c, ``<s>`` before it). The space
    before an answer and its ``</s>`` are inside the generation markers (a sentencepiece tokenizer
    merges the space into the answer's first token, which is what the model generates after
    ``Assistant:``). ``with_bos``: start with the BOS token, as FastChat's ``tokenizer([prompt])`` adds it
    for tokenizers that add one by default (the template is tokenized without special tokens)."""
    return (
        ("{{ bos_token }}" if with_bos else "")
        + "{% set ns = namespace(started=false) %}"
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}"
        "{{ 'System: ' + message['content'] }}{% set ns.started = true %}"
        "{% else %}"
        "{% if ns.started %}{{ '\\n' }}{% endif %}{% set ns.started = true %}"
        "{% if message['role'] == 'user' %}"
        "{{ 'User: ' + message['content'] }}"
        "{% elif message['role'] == 'assistant' %}"
        "{{ 'Assistant:" + sep + "' }}{% generation %}{{ ' ' + message['content'] + '</s>' }}{% endgeneration %}"
        "{% else %}{{ raise_exception('opengptx: unknown role ' + message['role']) }}"
        "{% endif %}{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{% if ns.started %}{{ '\\n' }}{% endif %}{{ 'Assistant:" + sep + "' }}{% endif %}"
    )


def fastchat_mistral_template(with_bos: bool) -> str:
    """FastChat's ``mistral`` conversation (system template ``[INST] {system_message}\\n``, roles ``[INST]`` /
    ``[/INST]``, ``LLAMA2`` style, sep ``" "``, sep2 ``</s>``): ``[INST] <q1> [/INST] <a1></s>[INST] <q2> [/INST]``;
    with a system message the first turn opens ``[INST] <msg>\\n<q1> [/INST]``. It has no system
    messages per language. The space before an answer and its ``</s>`` are inside the generation markers."""
    return (
        ("{{ bos_token }}" if with_bos else "")
        + "{% set ns = namespace(first=true, system=false) %}"
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}"
        "{{ '[INST] ' + message['content'] + '\\n' }}{% set ns.system = true %}"
        "{% elif message['role'] == 'user' %}"
        "{% if not (ns.first and ns.system) %}{{ '[INST] ' }}{% endif %}{% set ns.first = false %}"
        "{{ message['content'] + ' ' }}"
        "{% elif message['role'] == 'assistant' %}"
        "{{ '[/INST]' }}{% generation %}{{ ' ' + message['content'] + '</s>' }}{% endgeneration %}"
        "{% else %}{{ raise_exception('fastchat_mistral: unknown role ' + message['role']) }}"
        "{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}{{ '[/INST]' }}{% endif %}"
    )


# preset name -> (template builder taking with_bos, system messages per language)
_PRESET_BUILDERS = {
    "opengptx_2024_08": (lambda with_bos: opengptx_template(with_bos, sep="<s>"), OPENGPTX_2024_08_SYSTEM_MESSAGES),
    "opengptx_2024_09": (lambda with_bos: opengptx_template(with_bos, sep=""), OPENGPTX_SYSTEM_MESSAGES),
    "opengptx": (lambda with_bos: opengptx_template(with_bos, sep=""), OPENGPTX_SYSTEM_MESSAGES),
    "fastchat_mistral": (fastchat_mistral_template, {}),
}
PRESETS = tuple(_PRESET_BUILDERS)
KEEP_MODEL_TEMPLATE = "model"
BY_MODEL_ID = "by_model_id"


def template_for_model_id(model_id: str, key: str, opengptx_preset: str = "opengptx_2024_09") -> str:
    """MT-Bench-X's rule (``get_conversation_template(model_id)``, FastChat's model adapters): the
    conversation template is chosen by the model's id. Only the templates the study's models need are
    implemented: an id containing ``opengptx`` gets ``opengptx_preset``, one containing ``mistral`` or
    ``mixtral`` FastChat's ``mistral`` template; any other id is refused (set a preset or a Jinja file)."""
    lowered = model_id.lower()
    if "opengptx" in lowered:
        return opengptx_preset
    if "mistral" in lowered or "mixtral" in lowered:
        return "fastchat_mistral"
    raise ChatFormatError(
        f"{key}: by_model_id: MT-Bench-X would ask '{model_id}' in FastChat's template for that id, which mlit "
        f"does not implement (only ids with opengptx, mistral or mixtral); set a preset ({', '.join(PRESETS)}) "
        "or a Jinja file")


class ChatFormatError(ValueError):
    """A chat template that cannot train or stop; the message names the config key and the fix."""


@dataclass(frozen=True)
class ChatFormat:
    """What the prepared base model and every model fine-tuned from it are asked in."""

    name: str  # preset, "model" or the Jinja file
    template: str
    end_of_turn: str
    system_messages: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"name": self.name, "end_of_turn": self.end_of_turn, "system_messages": self.system_messages}


def end_of_turn_text(template: str, key: str) -> str:
    """The text a template writes after an answer inside its generation markers (e.g. ``</s>``)."""
    from transformers.utils.chat_template_utils import render_jinja_template

    content = "\x00ANSWER\x00"
    rendered, indices = render_jinja_template(
        [[{"role": "user", "content": "Q"}, {"role": "assistant", "content": content}]],
        chat_template=template, return_assistant_tokens_mask=True, bos_token="", eos_token="</s>")
    rendered, indices = rendered[0], indices[0]
    start = rendered.find(content)
    span = next(((a, b) for a, b in indices if a <= start < b), None)
    if span is None:
        raise ChatFormatError(
            f"{key}: the template does not put the assistant's answer inside {{% generation %}} ... "
            "{% endgeneration %}; wrap each answer and its end-of-turn text in them")
    tail = rendered[start + len(content):span[1]]
    if not tail.strip():
        raise ChatFormatError(
            f"{key}: nothing follows the answer inside {{% generation %}} ... {{% endgeneration %}}, so the model "
            "never learns to stop; put the end-of-turn text (e.g. </s>) inside the markers")
    return tail


def check_markers(template: str | None, key: str, where: str) -> str:
    if not template:
        raise ChatFormatError(
            f"{key}: {where} has no chat template; set {key} to a preset ({', '.join(PRESETS)}) or a Jinja file")
    if not GENERATION_MARKER.search(template):
        raise ChatFormatError(
            f"{key}: the chat template of {where} has no {{% generation %}} markers, so assistant-only loss cannot "
            f"find the answers; set {key} to a preset ({', '.join(PRESETS)}) or a Jinja file with the markers")
    return template


def resolve_template_setting(setting: str, key: str) -> str | Path:
    """Check a ``chat_template`` value without a tokenizer: a preset, ``model`` or an existing file
    with generation markers. Returns the preset/``model`` name or the file's path."""
    if setting in PRESETS or setting == KEEP_MODEL_TEMPLATE:
        return setting
    path = Path(setting)
    if not path.is_file():
        raise ChatFormatError(
            f"{key}: '{setting}' is neither a preset ({', '.join(PRESETS)}), '{BY_MODEL_ID}' (a base model's "
            "chat_template), 'model', nor an existing Jinja file")
    check_markers(path.read_text(encoding="utf-8"), key, str(path))
    return path.resolve()


def chat_format(setting: str, key: str, tokenizer) -> ChatFormat:
    """The chat format for ``tokenizer`` under the ``chat_template`` setting ``setting``."""
    resolved = resolve_template_setting(setting, key)
    if resolved in _PRESET_BUILDERS:
        bos = tokenizer.bos_token
        ids = tokenizer("a")["input_ids"]
        with_bos = bos is not None and bool(ids) and ids[0] == tokenizer.bos_token_id
        build, system_messages = _PRESET_BUILDERS[resolved]
        template = build(with_bos)
        return ChatFormat(resolved, template, end_of_turn_text(template, key), dict(system_messages))
    if resolved == KEEP_MODEL_TEMPLATE:
        template = check_markers(tokenizer.chat_template, key, "the base model's tokenizer")
        return ChatFormat(KEEP_MODEL_TEMPLATE, template, end_of_turn_text(template, key))
    template = Path(resolved).read_text(encoding="utf-8")
    return ChatFormat(str(resolved), template, end_of_turn_text(template, key))


def with_system_message(messages: list[dict], lang: str | None, policy: str,
                        system_messages: dict[str, str]) -> list[dict]:
    """Prepend the system message a training or generation conversation gets under ``policy``:
    ``own_language`` (the conversation's language), ``english``, or ``none``. Without system
    messages in the chat format (``model`` templates, Jinja files) nothing is added."""
    if policy == "none" or not system_messages or (messages and messages[0]["role"] == "system"):
        return messages
    chosen = system_messages.get("EN" if policy == "english" else (lang or "EN"))
    if chosen is None:
        raise ChatFormatError(f"system_message: no system message for language '{lang}' in this chat format")
    return [{"role": "system", "content": chosen}, *messages]
