"""GGUF files: small ones written here with ``gguf.GGUFWriter`` (q/k in llama.cpp's permuted rotary
layout, tensors stored as F32, F16 and Q8_0, a tiny gpt2-style vocabulary), read back through
``GGUFModel`` and ``registry.load``. Expected values come from the test's own permutation, its own
Q8_0 dequantization, numpy's float16 rounding, hand-computed token ids and ``transformers``."""

from __future__ import annotations

import re
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
import transformers

from geex.errors import UserError
from geex.models import registry
from geex.models.formats.gguf import GGUFModel, diagnose, hf_name, is_gguf, read_gguf, unpermute_rotary
from geex.models.tokenizers.hf import HFTokenizer

Q8_0 = gguf.GGMLQuantizationType.Q8_0


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf.py ``LlamaModel.permute``: Hugging Face's rotary halves ->
    interleaved pairs."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def dequantize_q8_0(raw: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Q8_0 by its definition: blocks of 32 values, each a float16 scale then 32 int8; value = scale * q."""
    blocks = np.asarray(raw, dtype=np.uint8).reshape(-1, 34)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # [n, 1]
    q = blocks[:, 2:].copy().view(np.int8).astype(np.float32)  # [n, 32]
    return (scale * q).reshape(shape)


# -- (a) the rotary permutation ----------------------------------------------------------------------


@pytest.mark.parametrize("n_head, head_dim, cols", [(4, 16, 8), (1, 2, 3), (3, 6, 5), (2, 64, 1)])
def test_unpermute_rotary_inverts_llama_cpp_permute(n_head, head_dim, cols):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((n_head * head_dim, cols)).astype(np.float32)
    np.testing.assert_array_equal(unpermute_rotary(permute(w, n_head), n_head), w)
    b = rng.standard_normal(n_head * head_dim).astype(np.float32)  # a bias
    np.testing.assert_array_equal(unpermute_rotary(permute(b, n_head), n_head), b)


def test_unpermute_rotary_by_hand():
    """One head of 4 dims: Hugging Face [x0, x1 | y0, y1] is stored as pairs [x0, y0, x1, y1]."""
    stored = np.array([10, 20, 11, 21], dtype=np.float32)  # x0=10, y0=20, x1=11, y1=21
    np.testing.assert_array_equal(unpermute_rotary(stored, 1), [10, 11, 20, 21])
    two_heads = np.array([0, 2, 1, 3, 4, 6, 5, 7], dtype=np.float32)
    np.testing.assert_array_equal(unpermute_rotary(two_heads, 2), [0, 1, 2, 3, 4, 5, 6, 7])
    rows = np.arange(8, dtype=np.float32).reshape(4, 2)  # rows move together, columns stay
    np.testing.assert_array_equal(unpermute_rotary(rows, 1), rows[[0, 2, 1, 3]])


def test_the_permutation_is_not_its_own_inverse():
    """So that the tests above can tell ``permute`` from ``unpermute``: for 8 dims they differ."""
    w = np.arange(8, dtype=np.float32)
    assert not np.array_equal(permute(w, 1), unpermute_rotary(w, 1))


# -- (c) tensor names ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gguf_name, expected", [
    ("token_embd.weight", "model.embed_tokens.weight"),
    ("output_norm.weight", "model.norm.weight"),
    ("output.weight", "lm_head.weight"),
    ("blk.0.attn_q.weight", "model.layers.0.self_attn.q_proj.weight"),
    ("blk.0.attn_k.weight", "model.layers.0.self_attn.k_proj.weight"),
    ("blk.0.attn_v.weight", "model.layers.0.self_attn.v_proj.weight"),
    ("blk.11.attn_q.bias", "model.layers.11.self_attn.q_proj.bias"),
    ("blk.11.attn_k.bias", "model.layers.11.self_attn.k_proj.bias"),
    ("blk.11.attn_v.bias", "model.layers.11.self_attn.v_proj.bias"),
    ("blk.3.attn_output.weight", "model.layers.3.self_attn.o_proj.weight"),
    ("blk.3.attn_output.bias", "model.layers.3.self_attn.o_proj.bias"),
    ("blk.29.ffn_gate.weight", "model.layers.29.mlp.gate_proj.weight"),
    ("blk.29.ffn_up.weight", "model.layers.29.mlp.up_proj.weight"),
    ("blk.29.ffn_down.weight", "model.layers.29.mlp.down_proj.weight"),
    ("blk.7.attn_norm.weight", "model.layers.7.input_layernorm.weight"),
    ("blk.7.ffn_norm.weight", "model.layers.7.post_attention_layernorm.weight"),
    ("rope_freqs.weight", None),
    ("blk.0.attn_qkv.weight", None),
    ("blk.x.attn_q.weight", None),
    ("output_norm.bias", None),
])
def test_hf_name(gguf_name, expected):
    assert hf_name(gguf_name) == expected


# -- (b) a small GGUF file ----------------------------------------------------------------------------


def byte_alphabet() -> list[str]:
    """GPT-2's byte -> printable character table (``bytes_to_unicode``), in byte order."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MERGES = ["d e", "de f", "Ġ Ġ", "ĠĠ ĠĠ", "r e", "re t", "1 2", "Ġ re"]
TOKENS = SPECIALS + byte_alphabet() + [m.replace(" ", "") for m in MERGES]
TOKEN_TYPES = [3] * len(SPECIALS) + [1] * (len(TOKENS) - len(SPECIALS))
TID = {t: i for i, t in enumerate(TOKENS)}
CHAT_TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
                 "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")

N_LAYER, N_EMBD, N_HEAD, N_KV, FFN = 2, 64, 4, 2, 96
HEAD = N_EMBD // N_HEAD
# per tensor kind, how it is stored (F32, F16, Q8_0): every storage type on q/k (permuted) and elsewhere
STORAGE = {
    "token_embd": Q8_0, "output": "F16", "output_norm": "F32",
    "attn_norm": "F32", "ffn_norm": "F32", "attn_output": Q8_0, "ffn_gate": "F32", "ffn_up": "F16", "ffn_down": Q8_0,
    "attn_v": "F16", "bias": "F32",
}
QK_STORAGE = {0: ("F32", Q8_0), 1: ("F16", "F32")}  # layer -> (attn_q, attn_k)


def hf_weights(rng, tied: bool, bias: bool, head: int = HEAD, pad_vocab: int = 0) -> dict[str, np.ndarray]:
    """Random weights in Hugging Face's names and layout (``pad_vocab`` embedding rows past the tokens)."""
    vocab = len(TOKENS) + pad_vocab

    def m(*shape, scale=0.1):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    w = {"model.embed_tokens.weight": m(vocab, N_EMBD, scale=0.5), "model.norm.weight": 1 + m(N_EMBD, scale=0.3)}
    if not tied:
        w["lm_head.weight"] = m(vocab, N_EMBD, scale=0.5)
    for i in range(N_LAYER):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = 1 + m(N_EMBD, scale=0.3)
        w[p + "post_attention_layernorm.weight"] = 1 + m(N_EMBD, scale=0.3)
        w[p + "self_attn.q_proj.weight"] = m(N_HEAD * head, N_EMBD, scale=0.3)
        w[p + "self_attn.k_proj.weight"] = m(N_KV * head, N_EMBD, scale=0.3)
        w[p + "self_attn.v_proj.weight"] = m(N_KV * head, N_EMBD)
        w[p + "self_attn.o_proj.weight"] = m(N_EMBD, N_HEAD * head)
        w[p + "mlp.gate_proj.weight"] = m(FFN, N_EMBD)
        w[p + "mlp.up_proj.weight"] = m(FFN, N_EMBD)
        w[p + "mlp.down_proj.weight"] = m(N_EMBD, FFN)
        if bias:
            for x, n in (("q", N_HEAD), ("k", N_KV), ("v", N_KV)):
                w[p + f"self_attn.{x}_proj.bias"] = m(n * head, scale=0.3)
    return w


GGUF_NAMES = {  # Hugging Face suffix -> GGUF suffix
    "input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.bias": "attn_v.bias", "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight",
}
TOP_NAMES = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}


def gguf_name_of(hf: str) -> str:
    if hf in TOP_NAMES:
        return TOP_NAMES[hf]
    _, _, layer, rest = hf.split(".", 3)
    return f"blk.{layer}.{GGUF_NAMES[rest]}"


def storage_of(gname: str):
    if gname.endswith(".bias"):
        return STORAGE["bias"]
    parts = gname.split(".")
    kind = parts[-2] if parts[0] == "blk" else parts[0]
    if kind in ("attn_q", "attn_k"):
        return QK_STORAGE[int(parts[1])][kind == "attn_k"]
    return STORAGE[kind]


def stored_and_expected(w: np.ndarray, storage) -> tuple[np.ndarray, np.ndarray, object]:
    """(what the writer gets, what the loader must return before any un-permutation, raw dtype)."""
    if storage == "F32":
        return w, w, None
    if storage == "F16":
        h = w.astype(np.float16)
        return h, h.astype(np.float32), None
    raw = gguf.quants.quantize(w, Q8_0)
    return raw, dequantize_q8_0(raw, w.shape), Q8_0


def write_gguf(path: Path, *, arch: str = "llama", tied: bool = False, bias: bool = False, seed: int = 0,
               drop_keys: tuple[str, ...] = (), pre: str = "gpt2", add_bos: bool = False,
               rope_scaling: tuple[str, float] | None = None, extra=None, head: int = HEAD,
               meta: dict | None = None, pad_vocab: int = 0, store_as: dict | None = None) -> dict[str, np.ndarray]:
    """Write a tiny model; return the weights (Hugging Face names and layout) the loader must give back."""
    rng = np.random.default_rng(seed)
    weights = hf_weights(rng, tied, bias, head, pad_vocab)
    writer = gguf.GGUFWriter(str(path), arch)
    keys = {
        f"{arch}.block_count": N_LAYER, f"{arch}.embedding_length": N_EMBD, f"{arch}.context_length": 256,
        f"{arch}.feed_forward_length": FFN, f"{arch}.attention.head_count": N_HEAD,
        f"{arch}.attention.head_count_kv": N_KV, f"{arch}.attention.layer_norm_rms_epsilon": 1e-5,
        f"{arch}.rope.freq_base": 1000.0,
    }
    if head != HEAD:
        keys[f"{arch}.attention.key_length"] = head
        keys[f"{arch}.attention.value_length"] = head
    keys.update({f"{arch}.{k}": v for k, v in (meta or {}).items()})
    for key, value in keys.items():
        if key.split(".", 1)[1] in drop_keys:
            continue
        if isinstance(value, float):
            writer.add_float32(key, value)
        else:
            writer.add_uint32(key, value)
    if rope_scaling:
        writer.add_rope_scaling_type(gguf.RopeScalingType(rope_scaling[0]))
        writer.add_rope_scaling_factor(rope_scaling[1])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(TOKENS)
    writer.add_token_types(TOKEN_TYPES)
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(TID["<|im_start|>"])
    writer.add_eos_token_id(TID["<|im_end|>"])
    writer.add_add_bos_token(add_bos)
    writer.add_chat_template(CHAT_TEMPLATE)
    if extra:
        extra(writer)
    expected = {}
    for name, w in weights.items():
        gname = gguf_name_of(name)
        storage = storage_of(gname)
        heads = {"attn_q": N_HEAD, "attn_k": N_KV}.get(gname.split(".")[2] if gname.startswith("blk") else "")
        permuted = arch == "llama" and heads is not None
        stored, back, raw_dtype = stored_and_expected(permute(w, heads) if permuted else w, storage)
        if gname in (store_as or {}):  # a numpy dtype the writer maps to its own type (F64, I32 ...)
            stored, back, raw_dtype = w.astype(store_as[gname]), w, None
        if permuted:  # the expected value in Hugging Face's layout: storage rounding is per row (Q8_0 blocks
            # of 32 along a row), so rounding then un-permuting equals permuting the rounded rows back
            _, back, _ = stored_and_expected(w, storage)
        writer.add_tensor(gname, stored, raw_dtype=raw_dtype)
        expected[name] = back
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return expected


def reference_model(expected: dict[str, np.ndarray], *, tied: bool, bias: bool, arch: str = "llama", rope=None,
                    head: int = HEAD):
    """transformers' model holding the expected weights."""
    common = dict(vocab_size=len(TOKENS), hidden_size=N_EMBD, intermediate_size=FFN, num_hidden_layers=N_LAYER,
                  num_attention_heads=N_HEAD, num_key_value_heads=N_KV, max_position_embeddings=256,
                  rms_norm_eps=1e-5, tie_word_embeddings=tied, head_dim=head,
                  rope_parameters={"rope_type": "default", "rope_theta": 1000.0, **(rope or {})})
    if arch == "qwen2":
        model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**common))
    else:
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**common, attention_bias=bias))
    sd = {k: torch.from_numpy(v) for k, v in expected.items()}
    if arch == "llama" and bias:
        for i in range(N_LAYER):  # Llama's attention_bias also puts a (here zero) bias on o_proj
            sd[f"model.layers.{i}.self_attn.o_proj.bias"] = torch.zeros(N_EMBD)
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}, (missing, unexpected)
    model.config._attn_implementation = "eager"
    return model.float().eval()


@pytest.fixture(scope="module")
def untied(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, write_gguf(path)


def test_weights_come_back_in_hugging_face_layout(untied):
    path, expected = untied
    g = GGUFModel(path)
    assert set(g.weights) == set(expected)
    assert len(g.weights) == len(expected)
    for name, want in expected.items():
        got = g.weights[name]
        assert got.dtype == torch.float32
        assert tuple(got.shape) == want.shape, name
        np.testing.assert_array_equal(got.numpy(), want, err_msg=name)  # exact: F32, F16 and Q8_0 alike
    # the test's expectations are not vacuous: each storage type and the permutation change something
    raw = hf_weights(np.random.default_rng(0), False, False)
    assert not np.array_equal(expected["model.embed_tokens.weight"], raw["model.embed_tokens.weight"])  # Q8_0
    assert not np.array_equal(expected["lm_head.weight"], raw["lm_head.weight"])  # F16
    np.testing.assert_array_equal(expected["model.layers.0.self_attn.q_proj.weight"],
                                  raw["model.layers.0.self_attn.q_proj.weight"])  # F32, exact
    q = g.weights["model.layers.0.self_attn.q_proj.weight"].numpy()
    assert not np.array_equal(q, permute(raw["model.layers.0.self_attn.q_proj.weight"], N_HEAD))


def test_returned_tensors_are_writable_copies(untied):
    path, _ = untied
    g = GGUFModel(path)
    t = g.weights["model.norm.weight"]
    t.add_(1.0)  # an F32 tensor must not be a read-only view of the file
    assert not torch.equal(g.weights["model.norm.weight"], t)


def test_config_from_metadata(untied):
    path, _ = untied
    g = GGUFModel(path)
    c = g.config
    assert (c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.head_dim) == (N_LAYER, N_EMBD, N_HEAD, N_KV, HEAD)
    assert (c.intermediate_size, c.vocab_size, c.n_positions) == (FFN, len(TOKENS), 256)
    assert (c.rope_theta, c.tie_embeddings, c.qkv_bias, c.o_bias) == (1000.0, False, False, False)
    assert c.rms_eps == pytest.approx(1e-5)
    assert c.rope_scaling is None
    assert g.fields["general.architecture"] == "llama"
    assert is_gguf(path)


@pytest.mark.parametrize("variant", ["untied", "tied-bias", "linear-rope", "qwen2-bias", "head-dim-32"])
def test_logits_equal_transformers_holding_the_expected_weights(variant, tmp_path):
    arch = "qwen2" if variant.startswith("qwen2") else "llama"
    tied, bias = variant == "tied-bias", "bias" in variant
    rope = ("linear", 2.0) if variant == "linear-rope" else None
    head = 32 if variant == "head-dim-32" else HEAD
    path = tmp_path / "m.gguf"
    expected = write_gguf(path, arch=arch, tied=tied, bias=bias, seed=3, rope_scaling=rope, head=head)
    loaded = registry.load(str(path), dtype=torch.float32)
    assert loaded.model.config.tie_embeddings == tied
    assert loaded.model.config.qkv_bias == bias
    assert loaded.model.config.head_dim == head
    ref = reference_model(expected, tied=tied, bias=bias, arch=arch,
                          rope={"rope_type": "linear", "factor": 2.0} if rope else None, head=head)
    ids = torch.randint(0, len(TOKENS), (2, 33), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = loaded.model(ids)
        theirs = ref(input_ids=ids).logits
    rel = float((ours - theirs).norm() / theirs.norm())
    assert rel < 1e-5, rel
    assert loaded.model.config.n_params() == sum(p.numel() for p in ref.parameters()) - (
        N_LAYER * N_EMBD if arch == "llama" and bias else 0)  # geex keeps no all-zero o_proj bias


def test_a_yarn_scaled_file_reads_its_scaling(tmp_path):
    path = tmp_path / "yarn.gguf"
    write_gguf(path, rope_scaling=("yarn", 4.0), extra=lambda w: w.add_rope_scaling_orig_ctx_len(64))
    c = GGUFModel(path).config
    assert c.rope_scaling == {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}


def test_the_tokenizer_from_metadata(untied):
    path, _ = untied
    tok = GGUFModel(path).tokenizer
    by_hand = {
        "def": [TID["def"]],
        "def ret": [TID["def"], TID["Ġ"], TID["ret"]],  # in 'Ġret', 'r e' (rank 4) then 're t' (5) beat 'Ġ re' (7)
        " re": [TID["Ġre"]],
        "ret": [TID["ret"]],
        "12": [TID["12"]],  # the gpt2 pre-tokenizer keeps digits together
        "   x": [TID["ĠĠ"], TID["Ġ"], TID["x"]],  # gpt2 leaves the last space to the word
        "<|im_start|>de<|im_end|>": [TID["<|im_start|>"], TID["de"], TID["<|im_end|>"]],
        "é": [TID[byte_alphabet()[0xC3]], TID[byte_alphabet()[0xA9]]],
    }
    for text, ids in by_hand.items():
        assert tok.encode(text) == ids, text
        assert tok.decode(ids) == text
    assert tok.eos_id == TID["<|im_end|>"]
    assert {TID["<|im_end|>"], TID["<|endoftext|>"]} <= tok.stop_ids
    assert tok.vocab_size == len(TOKENS)
    assert tok.apply_chat_template([{"role": "user", "content": "hi"}]) == \
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_the_tokenizer_matches_transformers_reading_the_same_file(untied):
    path, _ = untied
    tok = GGUFModel(path).tokenizer
    hf = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    for text in ["def ret 12 re", "   x\n\n\tdef", "<|im_start|>user\ndef<|im_end|>", "naïve 🙂 ¡"]:
        assert tok.encode(text) == hf(text, add_special_tokens=False)["input_ids"], text


def test_pre_tokenizer_and_bos_from_metadata(tmp_path):
    path = tmp_path / "smollm.gguf"
    write_gguf(path, pre="smollm", add_bos=True)
    tok = GGUFModel(path).tokenizer
    bos = TID["<|im_start|>"]
    assert tok.encode("12") == [bos, TID["1"], TID["2"]]  # digits one by one, and BOS first
    assert tok.encode_chat("12") == [TID["1"], TID["2"]]  # a rendered chat prompt gets no BOS


@pytest.mark.parametrize("arch", ["gpt2", "bert", "mamba"])
def test_an_unsupported_architecture_is_a_user_error(arch, tmp_path):
    path = tmp_path / "m.gguf"
    write_gguf(path, arch=arch)
    with pytest.raises(UserError, match=arch):
        GGUFModel(path)
    with pytest.raises(UserError, match=arch):
        registry.load(str(path))


@pytest.mark.parametrize("key", ["block_count", "embedding_length", "feed_forward_length", "attention.head_count",
                                 "context_length", "attention.layer_norm_rms_epsilon"])
def test_a_missing_metadata_key_is_a_user_error(key, tmp_path):
    path = tmp_path / "m.gguf"
    write_gguf(path, drop_keys=(key,))
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        registry.load(str(path))


def test_metadata_that_contradicts_the_tensor_shapes_is_a_user_error(tmp_path):
    path = tmp_path / "m.gguf"
    write_gguf(path, meta={"feed_forward_length": FFN + 32})  # the ffn tensors are FFN wide
    with pytest.raises(UserError):
        registry.load(str(path))


def test_an_unsupported_tokenizer_is_a_user_error(tmp_path):
    path = tmp_path / "m.gguf"
    write_gguf(path, pre="no-such-pre")
    with pytest.raises(UserError, match="no-such-pre"):
        GGUFModel(path)


def _as_read_by_the_gguf_package(path: Path) -> tuple[dict, dict]:
    reader = gguf.GGUFReader(path)
    fields = {k: f.contents() for k, f in reader.fields.items() if not k.startswith("GGUF.")}  # its own counters
    return fields, {t.name: t for t in reader.tensors}


@pytest.mark.parametrize("endian", ["little", "big"])
def test_read_gguf_equals_the_gguf_packages_reader(endian, tmp_path):
    """The one-pass reader against ``gguf.GGUFReader`` (an independent implementation) on a file with
    every storage type here, a token list, merges, a chat template and float/int/bool keys, in both
    byte orders: the same metadata values, tensor names, shapes, types and bytes."""
    path = tmp_path / "m.gguf"
    big = endian == "big"

    def extra(w):  # block-quantized tensors of one and of three dimensions (rows of raw bytes)
        w.add_tensor("test.q8_1d", gguf.quants.quantize(np.linspace(-1, 1, 64, dtype=np.float32), Q8_0), raw_dtype=Q8_0)
        w.add_tensor("test.q8_3d", gguf.quants.quantize(np.linspace(-1, 1, 2 * 3 * 64, dtype=np.float32)
                                                        .reshape(2, 3, 64), Q8_0), raw_dtype=Q8_0)
        w.add_bool("test.flag", True)
        w.add_array("test.floats", [0.5, -1.25])
        w.add_int64("test.i64", -(2**40))

    if big:  # the writer takes the byte order at construction: write through a patched class
        real = gguf.GGUFWriter
        gguf.GGUFWriter = lambda p, a: real(p, a, endianess=gguf.GGUFEndian.BIG)
        try:
            write_gguf(path, extra=extra, store_as={"output_norm.weight": np.float32})
        finally:
            gguf.GGUFWriter = real
    else:
        write_gguf(path, extra=extra)
    assert path.read_bytes()[4:8] == (3).to_bytes(4, endian)  # the control: the version in that byte order
    fields, tensors, _ = read_gguf(path)
    theirs, their_tensors = _as_read_by_the_gguf_package(path)
    assert fields == theirs and fields["test.flag"] is True and fields["test.i64"] == -(2**40)
    assert [t.name for t in tensors] == list(their_tensors)
    for t in tensors:
        other = their_tensors[t.name]
        assert t.shape == tuple(int(d) for d in other.shape) and t.tensor_type == other.tensor_type, t.name
        assert np.array_equal(np.asarray(t.data), np.asarray(other.data)), t.name


def test_read_gguf_on_the_default_model():
    """The embedded default model (Q4_1, a 49k-token vocabulary) reads as the gguf package reads it."""
    path = registry.default_model_path()
    fields, tensors, _ = read_gguf(path)
    theirs, their_tensors = _as_read_by_the_gguf_package(path)
    assert fields == theirs and len(fields["tokenizer.ggml.tokens"]) == 49152
    assert {t.name for t in tensors} == set(their_tensors) and len(tensors) == 272
    for t in tensors[:12]:
        assert np.array_equal(np.asarray(t.data), np.asarray(their_tensors[t.name].data)), t.name


def _undequantizable() -> tuple[np.dtype, str]:
    """A numpy dtype the GGUF writer stores as a tensor type that ``gguf`` cannot dequantize."""
    for dtype, name in ((np.float64, "F64"), (np.int32, "I32"), (np.int16, "I16"), (np.int8, "I8")):
        try:
            gguf.quants.dequantize(np.zeros(8, dtype).view(np.uint8), gguf.GGMLQuantizationType[name])
        except NotImplementedError:
            return dtype, name
    pytest.skip("this gguf version dequantizes every type the writer can store")


def test_a_tensor_type_gguf_cannot_dequantize_is_a_user_error(tmp_path):
    dtype, name = _undequantizable()
    path = tmp_path / "m.gguf"
    write_gguf(path, store_as={"output_norm.weight": dtype})
    model = GGUFModel(path)
    with pytest.raises(UserError, match=rf"GGUF tensor output_norm\.weight: type {name} cannot be dequantized"):
        model.tensor("model.norm.weight")
    with pytest.raises(UserError, match=name):
        registry.load(str(path))


# -- (d) files that are not GGUF ----------------------------------------------------------------------


def test_a_file_that_is_not_gguf_is_a_user_error(tmp_path):
    path = tmp_path / "notes.gguf"
    path.write_text("this is not a model\n" * 10)
    assert not is_gguf(path)
    assert not is_gguf(tmp_path)  # a directory
    for text in ("this is not a model\n", "AAAA and more\n"):  # bytes that sort after and before "GGUF"
        path.write_text(text * 10)
        with pytest.raises(UserError, match="not a GGUF file"):
            GGUFModel(path)
    with pytest.raises(UserError):
        registry.load(str(path))
    other = tmp_path / "weights.bin"
    other.write_bytes(b"\x00\x01garbage" * 100)
    with pytest.raises(UserError):
        registry.load(str(other))


@pytest.mark.parametrize("keep", [4, 10, 24, 200, "half", "last-byte"])
def test_a_truncated_gguf_is_a_user_error(keep, untied, tmp_path):
    src, _ = untied
    data = src.read_bytes()
    n = {"half": len(data) // 2, "last-byte": len(data) - 1}.get(keep, keep)
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[:n])
    assert is_gguf(path)
    with pytest.raises(UserError, match=rf"truncated GGUF file {re.escape(str(path))}: ") as e:
        registry.load(str(path))
    # where it is cut (a header cut) or how much is missing (the original file's size is the oracle)
    assert f"at byte {n}" in str(e.value) or f"({len(data) - n:,} bytes missing" in str(e.value), e.value


# -- (e) metadata defaults and the forms some files use -------------------------------------------------


def test_rope_base_defaults_to_ten_thousand(tmp_path):
    """A file without ``rope.freq_base`` gets Llama's base, 10000 (the keys written here say 1000)."""
    path = tmp_path / "m.gguf"
    write_gguf(path, drop_keys=("rope.freq_base",))
    assert GGUFModel(path).config.rope_theta == 10000.0


def test_vocabulary_size_from_the_token_list_without_the_key(tmp_path):
    path = tmp_path / "m.gguf"
    write_gguf(path)  # this writer gives no llama.vocab_size: the size is the token list's
    assert GGUFModel(path).config.vocab_size == len(TOKENS)
    path = tmp_path / "k.gguf"
    write_gguf(path, meta={"vocab_size": len(TOKENS) + 64})  # given: the key wins (a padded embedding)
    assert GGUFModel(path).config.vocab_size == len(TOKENS) + 64


def test_per_frequency_rope_factors_come_from_their_tensor(tmp_path):
    """Llama 3.1's ``rope_freqs.weight``: one factor a frequency, into the scaling as given."""
    factors = np.linspace(1.0, 8.0, HEAD // 2, dtype=np.float32)
    path = tmp_path / "m.gguf"
    write_gguf(path, extra=lambda w: w.add_tensor("rope_freqs.weight", factors))
    scaling = GGUFModel(path).config.rope_scaling
    assert scaling["rope_type"] == "default" and scaling["freq_factors"] == pytest.approx(factors.tolist())


def test_a_head_size_the_width_cannot_divide_is_allowed_when_given(tmp_path):
    """``key_length`` given: heads need not divide the width (Gemma-style); without it they must."""
    path = tmp_path / "m.gguf"
    write_gguf(path, meta={"attention.head_count": 3, "attention.head_count_kv": 3, "attention.key_length": 16})
    config = GGUFModel(path).config
    assert (config.n_head, config.head_dim) == (3, 16)
    path = tmp_path / "bad.gguf"
    write_gguf(path, meta={"attention.head_count": 3, "attention.head_count_kv": 3})
    with pytest.raises(UserError, match="head_count"):
        GGUFModel(path)


def test_bytes_after_the_tensor_data_are_not_a_truncation(untied, tmp_path):
    """Only a file shorter than its tensors say is truncated; bytes past them (padding some writers
    add) are ignored, as llama.cpp ignores them."""
    src, expected = untied
    path = tmp_path / "trailing.gguf"
    path.write_bytes(src.read_bytes() + b"\0" * 100)
    loaded = registry.load(str(path))
    assert torch.equal(loaded.model.model.norm.weight, torch.from_numpy(expected["model.norm.weight"]))
    assert diagnose(path) is None  # the walk that names a damaged file finds nothing wrong either


def test_a_padded_embedding_needs_the_vocabulary_size_key(tmp_path):
    """Qwen-style files: more embedding rows than tokens. With ``vocab_size`` saying so the model loads
    with every row (the tokenizer keeps its own size); without it the token count is the vocabulary and
    the embedding contradicts it: refused, as llama.cpp refuses it (the tensor has the wrong shape)."""
    path = tmp_path / "padded.gguf"
    expected = write_gguf(path, pad_vocab=4, meta={"vocab_size": len(TOKENS) + 4})
    loaded = registry.load(str(path))
    assert loaded.model.config.vocab_size == len(TOKENS) + 4 and loaded.tokenizer.vocab_size == len(TOKENS)
    assert torch.equal(loaded.model.model.embed_tokens.weight, torch.from_numpy(expected["model.embed_tokens.weight"]))
    assert loaded.model(torch.tensor([[1, 2, 3]])).shape == (1, 3, len(TOKENS) + 4)
    path = tmp_path / "unsaid.gguf"
    write_gguf(path, pad_vocab=4)
    with pytest.raises(UserError, match="token_embd|embed_tokens"):
        registry.load(str(path))


def test_a_gguf_without_its_token_list_is_a_user_error(tmp_path):
    """The tokenizer comes from the file: a gpt2 tokenizer without tokens is named, not a KeyError."""
    path = tmp_path / "m.gguf"
    write_gguf(path)
    fields = GGUFModel(path).fields
    del fields["tokenizer.ggml.tokens"]
    with pytest.raises(UserError, match=r"tokenizer\.ggml\.tokens"):
        HFTokenizer.from_gguf(fields)


@pytest.mark.parametrize("kind", ["longrope", "dynamic", "yarn2"])  # yarn2: a newer kind, not yarn
def test_other_rope_scalings_are_refused(kind, tmp_path):
    path = tmp_path / "m.gguf"
    write_gguf(path, extra=lambda w: (w.add_string("llama.rope.scaling.type", kind),
                                      w.add_float32("llama.rope.scaling.factor", 2.0)))
    with pytest.raises(UserError, match=kind):
        GGUFModel(path)
