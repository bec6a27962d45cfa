"""The embedded default model (SmolLM2-135M-Instruct, a Q4_1 GGUF file) against ``transformers`` reading
the same file: logits, greedy continuations, tokenizer ids and chat prompts. fp32 on the CPU."""

from __future__ import annotations

import pytest
import torch
import transformers

from geex.engine.generate import generate
from geex.models import registry

CODE_TEXT = '''# Merge sort, three ways, and a note on why.
def merge_sort(xs: list[int]) -> list[int]:
    """Sort a list by splitting it in halves and merging the sorted halves."""
    if len(xs) <= 1:
        return xs
    mid = len(xs) // 2
    left, right = merge_sort(xs[:mid]), merge_sort(xs[mid:])
    out = []
    i = j = 0
    while i < len(left) and j < len(right):
        if left[i] <= right[j]:
            out.append(left[i]); i += 1
        else:
            out.append(right[j]); j += 1
    return out + left[i:] + right[j:]


#include <vector>
#include <algorithm>

template <typename T>
std::vector<T> merge_sort(std::vector<T> v) {
    if (v.size() <= 1) return v;
    auto mid = v.begin() + v.size() / 2;
    std::vector<T> a(v.begin(), mid), b(mid, v.end());
    a = merge_sort(a);
    b = merge_sort(b);
    std::vector<T> out;
    std::merge(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
    return out;
}

Merge sort runs in O(n log n) time in every case, which is why standard libraries often use a
variant of it (Timsort in Python, a stable merge in C++'s std::stable_sort). Its drawback is the
extra memory: the merge step needs a buffer as large as the input.
'''

CODE_PROMPT = "def is_prime(n: int) -> bool:\n    \"\"\"Return True if n is a prime number.\"\"\"\n"

TOKENIZER_TEXTS = [
    CODE_PROMPT,
    "int main(void) {\n\tprintf(\"%d\\n\", 42);\n\treturn 0;\n}\n",
    "naïve café — Größe, 日本語のテキスト, Ελληνικά, русский",
    "emoji 🙂👍🏽 and a family 👨‍👩‍👧 ✓",
    "\t\ttabs\tand\t\t\tmore tabs\t",
    "digits 1234567890 3.14159 0x1F 1e-9 12,345,678",
    "windows\r\nline\r\n\r\nendings\r\n",
    "long          runs                    of spaces" + " " * 50 + "end",
    "<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text around special tokens<|im_end|>x",
    "   leading spaces and trailing   ",
    "x = {'a': [1, 2, 3], \"b\": None}  # comment\n\n\n",
    "",
]


@pytest.fixture(scope="module")
def geex_default(default_model_fp32):
    """``registry.load(dtype=torch.float32)``, shared with the serve tests (tests/conftest.py)."""
    return default_model_fp32


@pytest.fixture(scope="module")
def reference():
    path = registry.default_model_path()
    model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                              dtype=torch.float32)
    model.config._attn_implementation = "eager"  # the plain reference attention
    return model.eval()


@pytest.fixture(scope="module")
def hf_tok():
    path = registry.default_model_path()
    return transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)


def test_it_is_the_default(geex_default):
    assert registry.DEFAULT_MODEL == "smollm2-135m-instruct"
    assert geex_default.name == registry.DEFAULT_MODEL
    assert geex_default.model.config.n_layer == 30 and geex_default.model.config.n_embd == 576


def test_logits_of_real_text_equal_transformers(geex_default, reference, hf_tok):
    ids = hf_tok(CODE_TEXT)["input_ids"]
    assert len(ids) >= 256, len(ids)
    x = torch.tensor([ids])
    with torch.no_grad():
        ours = geex_default.model(x)
        theirs = reference(input_ids=x, attention_mask=torch.ones_like(x)).logits
    assert ours.shape == theirs.shape
    rel = float((ours - theirs).norm() / theirs.norm())
    assert rel < 1e-4, rel
    mismatch = (ours.argmax(-1) != theirs.argmax(-1)).nonzero()
    assert mismatch.numel() == 0, f"argmax differs at positions {mismatch[:, 1].tolist()}"


def test_64_greedy_tokens_equal_transformers(geex_default, reference, hf_tok):
    ids = hf_tok(CODE_PROMPT)["input_ids"]
    x = torch.tensor([ids])
    config = transformers.GenerationConfig(do_sample=False, max_new_tokens=64, min_new_tokens=0,
                                           eos_token_id=None, pad_token_id=hf_tok.eos_token_id)
    with torch.no_grad():
        out = reference.generate(input_ids=x, attention_mask=torch.ones_like(x), generation_config=config)
    expected = out[0, len(ids):].tolist()
    assert len(expected) == 64
    (got,) = generate(geex_default.model, geex_default.tokenizer, [CODE_PROMPT], 64, ignore_eos=True)
    assert got.token_ids == expected
    assert got.text == hf_tok.decode(expected)
    assert got.finish_reason == "length"


@pytest.mark.parametrize("text", TOKENIZER_TEXTS, ids=range(len(TOKENIZER_TEXTS)))
def test_token_ids_equal_transformers_and_decoding_round_trips(text, geex_default, hf_tok):
    tok = geex_default.tokenizer
    ids = tok.encode(text)
    assert ids == hf_tok(text)["input_ids"]
    assert tok.decode(ids) == text
    assert tok.decode(ids) == hf_tok.decode(ids)


def test_special_tokens_are_single_ids(geex_default, hf_tok):
    tok = geex_default.tokenizer
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert tok.encode(special) == [hf_tok.convert_tokens_to_ids(special)]


def test_encode_batch_equals_transformers(geex_default, hf_tok):
    texts = [t for t in TOKENIZER_TEXTS if t]
    assert geex_default.tokenizer.encode_batch(texts) == [hf_tok(t)["input_ids"] for t in texts]


CONVERSATIONS = {
    "one message": [{"role": "user", "content": "Write a function that reverses a string."}],
    "multi-turn with a system message": [
        {"role": "system", "content": "You are a terse coding assistant."},
        {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And in Python?\n```python\nprint(2 + 2)\n```"},
    ],
}


@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_chat_template_equals_transformers(name, geex_default, hf_tok):
    messages = CONVERSATIONS[name]
    tok = geex_default.tokenizer
    text = tok.apply_chat_template(messages)
    expected = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == expected
    assert text.endswith("<|im_start|>assistant\n")
    assert tok.encode_chat(text) == hf_tok(expected, add_special_tokens=False)["input_ids"]


def test_stop_ids_contain_the_end_of_turn(geex_default, hf_tok):
    im_end = hf_tok.convert_tokens_to_ids("<|im_end|>")
    assert isinstance(im_end, int) and im_end != hf_tok.unk_token_id
    assert im_end in geex_default.tokenizer.stop_ids
    assert hf_tok.eos_token_id in geex_default.tokenizer.stop_ids
