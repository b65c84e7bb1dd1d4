"""The chat template of the demo models.

Assistant turns are wrapped in ``{% generation %}`` markers so that TRL's ``assistant_only_loss``
finds them, and the end-of-turn token ``<|end|>`` is inside the markers so that the model learns to
stop. The same template is saved with every fine-tuned model and used for generation.
"""

END_OF_TURN = "<|end|>"
# ``</s>`` is one token as in Llama's and Mistral's tokenizers: the opengptx format ends each answer with it
SPECIAL_TOKENS = ["<pad>", "<s>", END_OF_TURN, "<|system|>", "<|user|>", "<|assistant|>", "</s>"]

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] + '<|end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)
