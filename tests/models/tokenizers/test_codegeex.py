"""The CodeGeeX tokenizer against the original's published behaviour (reference sheet §2)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geex.errors import UserError
from geex.models.tokenizers.codegeex import CodeGeeXTokenizer


@pytest.fixture(scope="module")
def tok(codegeex_tokenizer) -> CodeGeeXTokenizer:
    return codegeex_tokenizer


def test_worked_example(tok):
    text = "def f(x):\n    return x  +  1\n\tpass\n" + " " * 13 + "y"
    expected = [4299, 277, 7, 87, 2599, 198, 50268, 7783, 2124, 50266, 10, 50266, 16, 198, 197, 6603, 198,
                50274, 50267, 88]
    assert tok.encode(text) == expected
    assert tok.decode(expected) == text


def test_sizes_and_special_ids(tok):
    assert tok.vocab_size == 50400
    assert tok.eos_id == 50256
    assert tok.encode("<|endoftext|>") == [50256]


@pytest.mark.parametrize("n", range(2, 11))
def test_a_run_of_n_spaces_is_one_token(tok, n):
    assert tok.encode(" " * n) == [50264 + n]


def test_long_runs_are_taken_greedily_in_tens(tok):
    assert tok.encode(" " * 13) == [50274, 50267]
    assert tok.encode(" " * 21) == [50274, 50274, 220]  # then a plain space (Ġ = 220)


def test_word_after_whitespace_token_has_no_space_prefix(tok):
    assert tok.encode("  return") == [50266, 7783]
    assert tok.encode(" return") == [1441]


def test_single_spaces_tabs_newlines_are_plain_bpe(tok):
    assert tok.encode("\t") == [197]
    assert tok.encode("\n") == [198]
    assert tok.encode("a b") == [64, 275]


def test_padded_rows_decode_to_nothing(tok):
    assert tok.decode([88, 50400, 52223, 88]) == "yy"


def test_batch_equals_single(tok):
    texts = ["int main() {\n    return 0;\n}", "", "  x", "é😀\r\n"]
    assert tok.encode_batch(texts) == [tok.encode(t) for t in texts]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" \t\r\n") + ["a", "Z", "0", "{", "é", "中", "😀", "\u00a0", "\x00"]),
               max_size=80)
       | st.text(max_size=60).filter(lambda s: "<|" not in s))
def test_decode_round_trips_any_text(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_missing_files_are_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="tokenizer files missing: .*vocab.json"):
        CodeGeeXTokenizer(tmp_path)


SPECIAL_IN_TEXT = 'def f():\n    return "<|endoftext|>"  # <|extratoken_12|>\n        x<|extratoken_3|>'


def test_special_strings_in_text_are_special_by_default_as_in_the_original(tok):
    ids = tok.encode(SPECIAL_IN_TEXT)
    assert tok.eos_id in ids and tok.encode("<|endoftext|>") == [tok.eos_id]
    assert tok.decode(ids) == SPECIAL_IN_TEXT.replace("<|extratoken_12|>", "    ")  # 12 = four spaces


def test_literal_encoding_keeps_special_strings_as_text(tok):
    ids = tok.encode(SPECIAL_IN_TEXT, literal=True)
    specials = {tok.eos_id, tok.encode("<|extratoken_3|>")[0]}
    assert not specials & set(ids)
    assert tok.decode(ids) == SPECIAL_IN_TEXT
    assert tok.encode("<|endoftext|>", literal=True) == [27, 91, 437, 1659, 5239, 91, 29]  # GPT-2's pieces
    four_spaces = tok.encode("    ")[0]
    assert ids.count(four_spaces) == 1  # the indentation is still one whitespace token
    text = "int main() {\n    return 0;\n}"  # no special strings: the same ids either way
    assert tok.encode(text, literal=True) == tok.encode(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["<|endoftext|>", "<|extratoken_12|>", "<|", "|>", " ", "    ", "x", "\n", "é"]),
                max_size=20).map("".join))
def test_literal_encoding_round_trips(tok, text):
    assert tok.decode(tok.encode(text, literal=True)) == text


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" \t\n") + ["a", "Z", "0", '"', "<", "|", ">", "é", "😀"]), max_size=80)
       | st.text(max_size=60))
def test_literal_encoding_is_the_same_encoding_without_special_strings(tok, text):
    text = text.replace("<|", "< |")  # no special string can appear
    assert tok.encode(text, literal=True) == tok.encode(text)


def test_literal_encoding_merges_across_a_special_string_as_plain_bpe(tok):
    # ' <|endoftext|>': GPT-2 encodes ' <' as one token (1279), not ' ' + '<'
    assert tok.encode(" <|endoftext|>", literal=True) == [1279, 91, 437, 1659, 5239, 91, 29]
