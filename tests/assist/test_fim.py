"""FIM prompts against each family's own reference construction.

No family's real tokenizer can be downloaded here, so each test builds a small tokenizer with that
family's special tokens (a byte-level BPE trained on HumanEval-X code; for Code Llama a real
SentencePiece model) and compares ``geex.assist.fim.render``'s token ids with what the family's
reference does with the same tokenizer: the model card's prompt text through the tokenizer's own
call, or Code Llama's ``infilling_prompt_tokens`` written against SentencePiece itself.
"""

from __future__ import annotations

import pytest
from tokenizers import AddedToken, Tokenizer, decoders, processors

from geex.assist.fim import Budget, SourceFile, detect, first_line, render, stable_tail
from geex.models.tokenizers.hf import HFTokenizer
from tests.assist.fim_tokenizers import QWEN, bpe_tokenizer, humaneval_code

PREFIX = 'def remove_non_ascii(s: str) -> str:\n    """ '
SUFFIX = "\n    return result\n"


@pytest.fixture(scope="module")
def code(dataset_dir) -> list[str]:
    return humaneval_code(dataset_dir)


def test_qwen_psm_is_the_model_cards_prompt(code):
    """QwenLM/Qwen2.5-Coder README ("file-level code completion (fill-in-the-middle)"):
    ``tokenizer("<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>")``."""
    tok = bpe_tokenizer(code, QWEN)
    fim = detect(tok)
    assert fim.family == "qwen2.5-coder" and fim.layout == "psm"
    want = tok.encode(f"<|fim_prefix|>{PREFIX}<|fim_suffix|>{SUFFIX}<|fim_middle|>")
    got = render(tok, fim, PREFIX, SUFFIX)
    assert got.ids == want and got.mode == "psm"
    # llama.cpp ends FIM at the pad, repo-name and file-separator tokens; Qwen's example adds these two
    assert fim.stop_ids == {tok.token_id(t) for t in ("<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
                                                      "<|endoftext|>", "<|im_end|>")}


def test_qwen_repo_level_is_the_example_prompt(code):
    """QwenLM/Qwen2.5-Coder ``examples/Qwen2.5-Coder-repolevel-fim.py``: ``<|repo_name|>`` and the
    other files as ``<|file_sep|>path`` blocks, then the edited file's header and the PSM prompt
    (the example's string ends in a newline after ``<|fim_middle|>`` only because of its closing
    quotes; the prompt ends at ``<|fim_middle|>``, as llama.cpp's does)."""
    tok = bpe_tokenizer(code, QWEN)
    book = "class Book:\n    def __init__(self, title):\n        self.title = title\n"
    student = "class Student:\n    def __init__(self, name):\n        self.name = name\n"
    prefix, suffix = "from library import Book\n\ndef main():\n    # Student borrows a book", "\n    print(book)\n"
    text = (f"<|repo_name|>library-system\n<|file_sep|>library.py\n{book}\n<|file_sep|>student.py\n{student}\n"
            f"<|file_sep|>main.py\n<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>")
    got = render(tok, detect(tok), prefix, suffix, files=[SourceFile("library.py", book), SourceFile("student.py", student)],
                 path="main.py", repo="library-system", budget=Budget(2048, 4096))
    assert got.ids == tok.encode(text) and got.files_dropped == []
    # no room for both files: the first given (the oldest) goes first
    small = render(tok, detect(tok), prefix, suffix, files=[SourceFile("library.py", book), SourceFile("student.py", student)],
                   path="main.py", repo="library-system", budget=Budget(2048, 1 + len(tok.encode_plain(f"student.py\n{student}\n"))))
    assert small.files_dropped == ["library.py"]
    assert small.ids == tok.encode(f"<|repo_name|>library-system\n<|file_sep|>student.py\n{student}\n"
                                   f"<|file_sep|>main.py\n<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>")


def test_deepseek_coder_with_its_bos(code):
    """deepseek-ai/DeepSeek-Coder README §2 (code insertion): ``tokenizer.encode("<｜fim▁begin｜>" +
    prefix + "<｜fim▁hole｜>" + suffix + "<｜fim▁end｜>")``, which adds the BOS token first."""
    specials = ["<｜begin▁of▁sentence｜>", "<｜fim▁hole｜>", "<｜fim▁begin｜>", "<｜fim▁end｜>", "<｜end▁of▁sentence｜>"]
    tok = bpe_tokenizer(code, specials, bos="<｜begin▁of▁sentence｜>")
    fim = detect(tok)
    assert fim.family == "deepseek-coder"
    want = tok.encode("<｜fim▁begin｜>" + PREFIX + "<｜fim▁hole｜>" + SUFFIX + "<｜fim▁end｜>")
    assert want[0] == tok.token_id("<｜begin▁of▁sentence｜>")
    assert render(tok, fim, PREFIX, SUFFIX).ids == want
    assert fim.stop_ids == {tok.token_id("<｜end▁of▁sentence｜>")}


@pytest.mark.parametrize("family,names", [
    ("starcoder", ["<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<file_sep>", "<reponame>",
                   "<|endoftext|>"]),
    ("santacoder", ["<fim-prefix>", "<fim-middle>", "<fim-suffix>", "<fim-pad>", "<|endoftext|>"]),
])
def test_starcoder_and_santacoder(code, family, names):
    """bigcode's model cards: ``<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>`` (SantaCoder
    spells them with hyphens)."""
    tok = bpe_tokenizer(code, names)
    fim = detect(tok)
    assert fim.family == family
    pre, suf, mid = names[0], names[2], names[1]
    assert render(tok, fim, PREFIX, SUFFIX).ids == tok.encode(f"{pre}{PREFIX}{suf}{SUFFIX}{mid}")
    # suffix first, on request: SUF suffix PRE prefix MID
    assert render(tok, fim, PREFIX, SUFFIX, spm=True).ids == tok.encode(f"{suf}{SUFFIX}{pre}{PREFIX}{mid}")


def test_codegeex4_chat_turn(code):
    """THUDM/CodeGeeX4 ``guides/Infilling_guideline.md``: a user turn with ###PATH, ###LANGUAGE and
    ###MODE, then ``<|code_suffix|>suffix<|code_prefix|>prefix<|code_middle|><|assistant|>\\n``."""
    specials = ["<|code_prefix|>", "<|code_middle|>", "<|code_suffix|>", "<|user|>", "<|assistant|>",
                "<|observation|>", "<|endoftext|>"]
    tok = bpe_tokenizer(code, specials)
    fim = detect(tok)
    assert fim.family == "codegeex4"
    want = tok.encode(f"<|user|>\n###PATH:src/a.py\n###LANGUAGE:Python\n###MODE:LINE\n"
                      f"<|code_suffix|>{SUFFIX}<|code_prefix|>{PREFIX}<|code_middle|><|assistant|>\n")
    assert render(tok, fim, PREFIX, SUFFIX, path="src/a.py", language="Python", line_mode=True).ids == want
    assert {tok.token_id(t) for t in ("<|user|>", "<|assistant|>", "<|observation|>", "<|endoftext|>")} <= fim.stop_ids


@pytest.fixture(scope="module")
def codellama(code, tmp_path_factory):
    """A real SentencePiece model trained as Llama's was (BPE, byte fallback, no normalization)
    with Code Llama's infilling pieces ``▁<PRE> ▁<SUF> ▁<MID> ▁<EOT>`` and a ``☺`` piece, and the
    same model as a tokenizer.json (pieces and merges extracted as ``transformers`` converts
    Llama's, with its normalizer: a "▁" before the text, spaces as "▁"; BOS added)."""
    spm = pytest.importorskip("sentencepiece")
    from tokenizers import normalizers
    from tokenizers.models import BPE
    from transformers.convert_slow_tokenizer import SentencePieceExtractor

    d = tmp_path_factory.mktemp("codellama")
    (d / "corpus.txt").write_text("\n".join(code) + "\n☺\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(d / "corpus.txt"), model_prefix=str(d / "sp"), vocab_size=800, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, user_defined_symbols=["▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"],
        normalization_rule_name="identity", remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
        split_digits=True, bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_file=str(d / "sp.model"))
    pieces = SentencePieceExtractor(str(d / "sp.model")).extract(BPE)
    tok = Tokenizer(BPE(vocab=pieces["vocab"], merges=pieces["merges"], unk_token="<unk>", fuse_unk=True,
                        byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
    tok.add_tokens(pieces["additional_special_tokens"])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return sp, HFTokenizer(tok, [2], bos_token="<s>", eos_token="</s>")


@pytest.mark.parametrize("suffix_first", [False, True])
def test_codellama_is_infilling_prompt_tokens(codellama, suffix_first):
    """meta-llama/codellama ``llama/generation.py::infilling_prompt_tokens``, written here against
    SentencePiece: ``[bos, PRE] + encode(pre) + [SUF] + encode_infilling(suf) + [MID]`` (suffix
    first: ``[bos, PRE, SUF] + encode_infilling(suf) + [MID] + encode(pre)``), where
    ``encode_infilling(s) = sp.encode("☺" + s)[2:]`` drops SentencePiece's implicit leading space."""
    sp, tok = codellama
    fim = detect(tok)
    assert fim.family == "codellama" and fim.layout == "codellama"
    pre, suf, mid = (sp.piece_to_id(p) for p in ("▁<PRE>", "▁<SUF>", "▁<MID>"))

    def encode_infilling(s: str) -> list[int]:
        return sp.encode("☺" + s)[2:]

    if suffix_first:
        want = [sp.bos_id(), pre, suf] + encode_infilling(SUFFIX) + [mid] + sp.encode(PREFIX)
    else:
        want = [sp.bos_id(), pre] + sp.encode(PREFIX) + [suf] + encode_infilling(SUFFIX) + [mid]
    got = render(tok, fim, PREFIX, SUFFIX, spm=suffix_first)
    assert got.ids == want and got.mode == "codellama"
    assert fim.stop_ids == {sp.piece_to_id("▁<EOT>")}


def test_gguf_metadata_names_the_tokens(code):
    """llama.cpp reads ``tokenizer.ggml.fim_{pre,suf,mid,pad,rep,sep}_token_id`` before scanning
    the vocabulary: ids named there win, even for tokens with unknown spellings."""
    tok = bpe_tokenizer(code, ["<[fim-prefix]>", "<[fim-suffix]>", "<[fim-middle]>", "<|endoftext|>"])  # Seed-Coder's
    assert detect(tok) is None  # spellings nobody scans for
    ids = {r: tok.token_id(t) for r, t in (("pre", "<[fim-prefix]>"), ("suf", "<[fim-suffix]>"), ("mid", "<[fim-middle]>"))}
    meta = {f"tokenizer.ggml.fim_{r}_token_id": i for r, i in ids.items()}
    fim = detect(tok, meta)
    assert fim.ids == ids and fim.family == "gguf"
    assert render(tok, fim, PREFIX, SUFFIX).ids == tok.encode(f"<[fim-prefix]>{PREFIX}<[fim-suffix]>{SUFFIX}<[fim-middle]>")
    old = {"tokenizer.ggml.prefix_token_id": ids["pre"], "tokenizer.ggml.suffix_token_id": ids["suf"],
           "tokenizer.ggml.middle_token_id": ids["mid"]}
    assert detect(tok, old).ids == ids  # the older key names
    assert detect(tok, {"tokenizer.ggml.fim_pre_token_id": ids["pre"]}) is None  # not all three


def test_models_without_fim_get_the_prefix_after_the_language_tag(code, codegeex_tokenizer):
    """CodeGeeX-13B's vocabulary has no FIM token: the prompt is its language tag and the prefix,
    and the suffix's first non-blank line is what ends the output when it comes."""
    assert detect(codegeex_tokenizer) is None
    got = render(codegeex_tokenizer, None, PREFIX, "\n\n    return result\n", tag="# language: Python")
    assert got.mode == "prefix_only" and got.suffix_line == "return result"
    assert got.ids == codegeex_tokenizer.encode("# language: Python\n" + PREFIX)


def test_the_budget_keeps_the_prefix_tail_and_the_suffix_head(code):
    tok = bpe_tokenizer(code, QWEN)
    fim = detect(tok)
    prefix, suffix = "\n".join(code[:20]), "\n".join(code[20:40])
    pre, suf = tok.encode_plain(prefix), tok.encode_plain(suffix)
    window = 512
    got = render(tok, fim, prefix, suffix, budget=Budget(window))
    kept_pre = got.ids[1:got.ids.index(fim.ids["suf"])]
    kept_suf = got.ids[got.ids.index(fim.ids["suf"]) + 1:-1]
    assert len(kept_pre) <= 3 * window // 4 and kept_pre == pre[len(pre) - len(kept_pre):]  # the tail
    assert kept_suf == suf[:window // 4 - 2]  # the head: llama.cpp's n_batch/4 - 2
    assert (got.prefix_tokens_dropped, got.suffix_tokens_dropped) == (len(pre) - len(kept_pre), len(suf) - len(kept_suf))


def test_the_prefix_is_cut_at_block_boundaries_that_stay_put():
    """A prefix growing by a token at a time keeps the same first token until a whole block more
    must go: the server's cached prompt start survives the keystrokes in between."""
    ids = list(range(1000))
    assert stable_tail(ids, 2000) == ids
    firsts = [stable_tail(ids[:n], 600, block=256)[0] for n in range(601, 1000)]
    assert firsts[0] == 256 and set(firsts) == {256, 512}  # the cut moved once in 400 keystrokes
    for n in range(601, 1000):
        kept = stable_tail(ids[:n], 600, block=256)
        assert len(kept) <= 600 and kept == ids[n - len(kept):n]


def test_first_line():
    assert first_line("\n  \n    return x\n}") == "return x"
    assert first_line(" \n\t\n") is None
