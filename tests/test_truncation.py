from transformers import AutoTokenizer

from mlit.train.truncation import truncation_report

MAX_LENGTH = 48
SHORT = [{"role": "user", "content": "Was ist zwei plus zwei?"}, {"role": "assistant", "content": "Vier."}]
LONG_ANSWER = " ".join(["The answer keeps going with many more words than the limit allows."] * 6)
LONG = [{"role": "user", "content": "Tell me a long story."}, {"role": "assistant", "content": LONG_ANSWER}]


def tokens(tokenizer, messages, **kwargs) -> list[int]:
    return tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)["input_ids"]


def answer_span(tokenizer, messages) -> tuple[int, int]:
    """(first position, number of tokens) of the single assistant turn, without the assistant mask:
    the prompt's tokens, then the answer's own tokens and the end-of-turn token."""
    start = len(tokens(tokenizer, messages[:1], add_generation_prompt=True))
    count = len(tokenizer(messages[1]["content"], add_special_tokens=False)["input_ids"]) + 1  # + <|end|>
    return start, count


def test_truncation_report_counts_lost_answer_tokens(tiny_base_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    short_start, short_count = answer_span(tokenizer, SHORT)
    long_start, long_count = answer_span(tokenizer, LONG)
    short_length, long_length = len(tokens(tokenizer, SHORT)), len(tokens(tokenizer, LONG))
    assert short_length <= MAX_LENGTH < long_start + long_count < long_length + 1  # the long answer is cut
    assert long_start < MAX_LENGTH  # ... but not all of it
    long_lost = long_start + long_count - MAX_LENGTH

    rows = [{"lang": "DE", "messages": SHORT}, {"lang": "EN", "messages": LONG}, {"lang": "EN", "messages": SHORT},
            {"messages": SHORT}]
    report = truncation_report(rows, tokenizer, MAX_LENGTH, batch_size=3)  # two batches, the second partial

    assert list(report) == ["DE", "EN", "unknown"]
    assert report["DE"] == {"examples": 1, "truncated_examples": 0, "answer_tokens": short_count,
                            "answer_tokens_lost": 0, "answer_tokens_lost_fraction": 0.0}
    assert report["unknown"] == report["DE"]
    assert report["EN"] == {"examples": 2, "truncated_examples": 1, "answer_tokens": long_count + short_count,
                            "answer_tokens_lost": long_lost,
                            "answer_tokens_lost_fraction": long_lost / (long_count + short_count)}
    assert 0 < long_lost < long_count


def test_truncation_report_of_nothing_is_empty(tiny_base_model):
    assert truncation_report([], AutoTokenizer.from_pretrained(tiny_base_model), 16) == {}


def test_the_truncation_report_in_several_processes_equals_one(tiny_base_model):
    from transformers import AutoTokenizer

    from mlit.train.truncation import truncation_report

    tokenizer = AutoTokenizer.from_pretrained(tiny_base_model)
    rows = [{"lang": ["EN", "DE"][i % 2], "messages": [
        {"role": "user", "content": "Frage " * (i % 13)},
        {"role": "assistant", "content": "Antwort " * (i % 29)}]} for i in range(60)]
    assert truncation_report(rows, tokenizer, 24, batch_size=10, num_proc=3) == \
        truncation_report(rows, tokenizer, 24, batch_size=10)
