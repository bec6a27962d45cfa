"""The Llama family (Llama, Mistral, Qwen2) against ``transformers`` itself: tiny random models written
by ``transformers`` (``save_pretrained``, safetensors) with a byte-level BPE ``tokenizer.json``,
loaded through ``geex.models.registry.load``; every expected value comes from ``transformers``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from geex.engine.generate import generate
from geex.errors import UserError
from geex.models import registry
from geex.models.cache import KVCache

EOS = "<|endoftext|>"
CORPUS = [
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "int main() {\n    std::vector<int> v = {1, 2, 3};\n    for (auto x : v) std::cout << x << std::endl;\n}\n",
    "The quick brown fox jumps over the lazy dog. Tokenizers split text into pieces.\n",
    "function add(a, b) { return a + b; }\nclass Point:\n    def __init__(self, x, y):\n        self.x = x\n",
] * 4
SEQ = 40  # tokens in the logits tests


def copy_of(src: Path, directory: Path) -> Path:
    """A copy of a written model directory, to edit without touching the module's fixture."""
    shutil.copytree(src, directory)
    return directory


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def tokenizer_files(tmp_path_factory) -> Path:
    """A ByteLevel BPE trained on a little code, saved as tokenizer.json + tokenizer_config.json."""
    d = tmp_path_factory.mktemp("tokenizer")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.save(str(d / "tokenizer.json"))
    (d / "tokenizer_config.json").write_text(json.dumps(
        {"eos_token": EOS, "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 128}))
    return d


@pytest.fixture(scope="module")
def vocab(tokenizer_files) -> int:
    return Tokenizer.from_file(str(tokenizer_files / "tokenizer.json")).get_vocab_size()


@pytest.fixture(scope="module")
def eos_id(tokenizer_files) -> int:
    return Tokenizer.from_file(str(tokenizer_files / "tokenizer.json")).token_to_id(EOS)


BASE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
            max_position_embeddings=128, rms_norm_eps=1e-5, initializer_range=0.1)

VARIANTS = {
    # name: (transformers architecture, config overrides)
    "llama-mha-untied": ("llama", dict(num_key_value_heads=4, tie_word_embeddings=False)),
    "llama-gqa-tied": ("llama", dict(num_key_value_heads=2, tie_word_embeddings=True)),
    "llama-mqa": ("llama", dict(num_key_value_heads=1, tie_word_embeddings=False)),
    "llama-attention-bias": ("llama", dict(num_key_value_heads=2, attention_bias=True)),
    "llama-mlp-bias": ("llama", dict(num_key_value_heads=2, mlp_bias=True, tie_word_embeddings=True)),
    "llama-head-dim-32": ("llama", dict(num_key_value_heads=2, head_dim=32)),
    "llama-head-dim-8-mqa": ("llama", dict(num_key_value_heads=1, head_dim=8, tie_word_embeddings=True)),
    "llama-theta": ("llama", dict(num_key_value_heads=2, rope_parameters={"rope_type": "default",
                                                                          "rope_theta": 500.0})),
    "llama-rope-linear": ("llama", dict(num_key_value_heads=2, rope_parameters={
        "rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0})),
    "llama-rope-llama3": ("llama", dict(num_key_value_heads=2, rope_parameters={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64, "rope_theta": 10000.0})),
    "llama-rope-yarn": ("llama", dict(num_key_value_heads=2, rope_parameters={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "rope_theta": 10000.0})),
    "llama-rope-yarn-betas-untruncated": ("llama", dict(num_key_value_heads=2, rope_parameters={
        "rope_type": "yarn", "factor": 8.0, "original_max_position_embeddings": 16, "beta_fast": 16.0,
        "beta_slow": 2.0, "truncate": False, "rope_theta": 10000.0})),
    "llama-rope-yarn-mscale": ("llama", dict(num_key_value_heads=2, rope_parameters={
        "rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32, "mscale": 0.707,
        "mscale_all_dim": 1.0, "rope_theta": 10000.0})),
    "llama-rope-yarn-attention-factor": ("llama", dict(num_key_value_heads=2, rope_parameters={
        "rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 64, "attention_factor": 1.3,
        "rope_theta": 10000.0})),
    "qwen2-qkv-bias-untied": ("qwen2", dict(num_key_value_heads=2, tie_word_embeddings=False)),
    "qwen2-qkv-bias-tied-mqa": ("qwen2", dict(num_key_value_heads=1, tie_word_embeddings=True)),
    "mistral-gqa": ("mistral", dict(num_key_value_heads=2, sliding_window=None)),
    "mistral-window-head-dim": ("mistral", dict(num_key_value_heads=2, sliding_window=64, head_dim=24)),
}
CLASSES = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
}


def hf_model(kind: str, overrides: dict, vocab: int, eos_id: int, seed: int = 0):
    """A transformers model with random weights; norms and biases moved away from 1 and 0 so that
    they are tested too."""
    config_cls, model_cls = CLASSES[kind]
    cfg = config_cls(**{**BASE, **overrides}, vocab_size=vocab, eos_token_id=eos_id, bos_token_id=None,
                     pad_token_id=None)
    torch.manual_seed(seed)
    model = model_cls(cfg).float().eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
    model.config._attn_implementation = "eager"  # the plain reference attention, not SDPA
    return model


def write_model(model, tokenizer_files: Path, directory: Path) -> Path:
    model.save_pretrained(directory, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (directory / f).write_bytes((tokenizer_files / f).read_bytes())
    return directory


@pytest.fixture(scope="module")
def written(tmp_path_factory, tokenizer_files, vocab, eos_id):
    """name -> (transformers model, its directory); made once per variant."""
    made: dict[str, tuple] = {}

    def get(name: str):
        if name not in made:
            kind, overrides = VARIANTS[name]
            model = hf_model(kind, overrides, vocab, eos_id, seed=len(made))
            made[name] = model, write_model(model, tokenizer_files, tmp_path_factory.mktemp(name))
        return made[name]

    return get


def random_ids(vocab: int, shape, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def hf_logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits


@pytest.mark.parametrize("name", list(VARIANTS))
def test_logits_equal_transformers(name, written, vocab):
    ref_model, directory = written(name)
    loaded = registry.load(str(directory), dtype=torch.float32)
    ids = random_ids(vocab, (2, SEQ), seed=1)
    with torch.no_grad():
        ours = loaded.model(ids)
    ref = hf_logits(ref_model, ids)
    assert ours.shape == ref.shape == (2, SEQ, vocab)
    assert rel(ours, ref) < 1e-5, rel(ours, ref)


@pytest.mark.parametrize("name", list(VARIANTS))
def test_n_params_equals_transformers(name, written):
    ref_model, directory = written(name)
    loaded = registry.load(str(directory), dtype=torch.float32)
    expected = sum(p.numel() for p in ref_model.parameters())  # a tied head is one Parameter: counted once
    assert loaded.model.config.n_params() == expected
    assert sum(p.numel() for p in loaded.model.parameters()) == expected


def test_the_config_reads_what_transformers_wrote(written):
    ref_model, directory = written("llama-head-dim-32")
    cfg = registry.load(str(directory)).model.config
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.n_kv_head, cfg.head_dim) == (2, 64, 4, 2, 32)
    assert (cfg.intermediate_size, cfg.rms_eps, cfg.tie_embeddings) == (128, 1e-5, False)
    assert cfg.n_positions == 128
    cfg = registry.load(str(written("qwen2-qkv-bias-tied-mqa")[1])).model.config
    assert (cfg.qkv_bias, cfg.o_bias, cfg.tie_embeddings, cfg.n_kv_head) == (True, False, True, 1)
    cfg = registry.load(str(written("llama-attention-bias")[1])).model.config
    assert (cfg.qkv_bias, cfg.o_bias) == (True, True)


@pytest.mark.parametrize("name", ["llama-gqa-tied", "qwen2-qkv-bias-untied", "llama-rope-yarn"])
def test_decoding_step_by_step_through_the_cache_equals_the_whole_sequence(name, written, vocab):
    ref_model, directory = written(name)
    model = registry.load(str(directory), dtype=torch.float32).model
    ids = random_ids(vocab, (2, 24), seed=2)
    ref = hf_logits(ref_model, ids)
    prefill = 7
    for static in (False, True):  # int start (eager) and tensor start (a static step, as CUDA graphs run)
        cache = KVCache(model.config, 2, 24)
        with torch.no_grad():
            parts = [model(ids[:, :prefill], cache, start=0)]
            for t in range(prefill, 24):
                start = torch.tensor([t]) if static else t
                parts.append(model(ids[:, t:t + 1], cache, start=start))
        steps = torch.cat(parts, dim=1)
        assert rel(steps, ref) < 1e-5, (static, rel(steps, ref))


def hf_greedy(model, prompt: list[int], n: int) -> list[int]:
    """transformers' greedy continuation of ``prompt``, ``n`` tokens, EOS not stopping it."""
    ids = torch.tensor([prompt])
    config = transformers.GenerationConfig(do_sample=False, max_new_tokens=n, min_new_tokens=0,
                                           eos_token_id=None, pad_token_id=0)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config)
    return out[0, len(prompt):].tolist()


@pytest.mark.parametrize("name, step", [("llama-gqa-tied", "eager"), ("qwen2-qkv-bias-untied", "eager"),
                                        ("llama-mqa", "static")])
def test_batched_generation_of_id_prompts_equals_each_alone_and_transformers(name, step, written, vocab, eos_id):
    ref_model, directory = written(name)
    loaded = registry.load(str(directory), dtype=torch.float32)
    g = torch.Generator().manual_seed(5)
    prompts = [torch.randint(0, vocab, (n,), generator=g).tolist() for n in (3, 11, 1, 17)]
    prompts[0][0] = eos_id  # an EOS inside a prompt (the padding id) is a real token of its row
    batched = generate(loaded.model, loaded.tokenizer, prompts, 12, ignore_eos=True, step=step)
    for prompt, got in zip(prompts, batched):
        expected = hf_greedy(ref_model, prompt, 12)
        assert got.token_ids == expected
        (alone,) = generate(loaded.model, loaded.tokenizer, [prompt], 12, ignore_eos=True, step=step)
        assert alone.token_ids == expected
        assert got.finish_reason == "length"


def test_greedy_generate_equals_transformers_generate(written, tokenizer_files):
    ref_model, directory = written("llama-gqa-tied")
    loaded = registry.load(str(directory), dtype=torch.float32)
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(directory))
    prompt = "def fibonacci(n):\n    if n < 2:"
    ids = hf_tok(prompt)["input_ids"]
    assert loaded.tokenizer.encode(prompt) == ids
    with torch.no_grad():
        out = ref_model.generate(input_ids=torch.tensor([ids]),
                                 attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=False, max_new_tokens=20, pad_token_id=hf_tok.eos_token_id)
    expected = out[0, len(ids):].tolist()
    if hf_tok.eos_token_id in expected:  # transformers keeps the EOS it stopped at; geex reports it as the reason
        expected = expected[:expected.index(hf_tok.eos_token_id)]
    (got,) = generate(loaded.model, loaded.tokenizer, [prompt], 20)
    assert got.token_ids == expected
    assert got.text == hf_tok.decode(expected)
    assert got.finish_reason == ("length" if len(expected) == 20 else "eos")
    # and with EOS ignored, token for token against transformers' unstopped continuation
    (unstopped,) = generate(loaded.model, loaded.tokenizer, [prompt], 20, ignore_eos=True)
    assert unstopped.token_ids == hf_greedy(ref_model, ids, 20)


def test_int8_quantization_stays_close_to_float(written, vocab):
    for name in ("llama-mha-untied", "qwen2-qkv-bias-tied-mqa"):
        ref_model, directory = written(name)
        loaded = registry.load(str(directory), dtype=torch.float32, quantize="int8")
        ids = random_ids(vocab, (2, SEQ), seed=3)
        with torch.no_grad():
            ours = loaded.model(ids)
        ref = hf_logits(ref_model, ids)
        assert rel(ours, ref) < 0.05, rel(ours, ref)
        assert rel(ours, ref) > 1e-5  # the weights really were rounded
        assert loaded.model.config.n_params() == sum(p.numel() for p in ref_model.parameters())


def test_the_tokenizer_matches_transformers(written):
    _, directory = written("llama-gqa-tied")
    tok = registry.load(str(directory)).tokenizer
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(directory))
    texts = ["def f(x):\n\treturn x ** 2  # square", "naïve café 日本語 🙂", "   spaces\r\n\r\nand 12345",
             EOS + "x"]
    for text in texts:
        assert tok.encode(text) == hf_tok(text)["input_ids"], text
        assert tok.decode(tok.encode(text)) == text
    assert tok.eos_id == hf_tok.eos_token_id
    assert hf_tok.eos_token_id in tok.stop_ids
    assert tok.encode_batch(texts) == [hf_tok(t)["input_ids"] for t in texts]


def _edit_config(directory: Path, **changes) -> None:
    path = directory / "config.json"
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


@pytest.mark.parametrize("rope", [
    {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0},
    {"rope_type": "longrope", "short_factor": [1.0] * 8, "long_factor": [2.0] * 8,
     "original_max_position_embeddings": 64, "rope_theta": 10000.0},
])
def test_an_unsupported_rope_type_is_a_user_error(rope, tmp_path, written):
    ref_model, _ = written("llama-gqa-tied")
    directory = tmp_path / "m"
    ref_model.save_pretrained(directory, safe_serialization=True)
    (directory / "tokenizer.json").write_bytes((written("llama-gqa-tied")[1] / "tokenizer.json").read_bytes())
    _edit_config(directory, rope_parameters=rope)
    with pytest.raises(UserError, match=rope["rope_type"]):
        registry.load(str(directory))


def test_an_old_style_rope_scaling_key_is_read(tmp_path, written, vocab):
    """Older config.json files name it ``rope_scaling`` with ``type``, and ``rope_theta`` at the top."""
    ref_model, src = written("llama-rope-linear")
    directory = copy_of(src, tmp_path / "m")
    raw = json.loads((directory / "config.json").read_text())
    rope = raw.pop("rope_parameters")
    raw["rope_scaling"] = {"type": rope["rope_type"], "factor": rope["factor"]}
    raw["rope_theta"] = rope["rope_theta"]
    (directory / "config.json").write_text(json.dumps(raw))
    ids = random_ids(vocab, (1, SEQ), seed=4)
    with torch.no_grad():
        ours = registry.load(str(directory)).model(ids)
    assert rel(ours, hf_logits(ref_model, ids)) < 1e-5


@pytest.mark.parametrize("changes, words", [
    (dict(model_type="gpt2"), "gpt2"),
    (dict(model_type="falcon"), "falcon"),
    (dict(hidden_act="gelu"), "gelu"),
    (dict(num_key_value_heads=3), "num_attention_heads 4 is not divisible by num_key_value_heads 3"),
])
def test_an_unsupported_model_is_a_user_error(changes, words, tmp_path, written):
    directory = copy_of(written("llama-mha-untied")[1], tmp_path / "m")
    _edit_config(directory, **changes)
    with pytest.raises(UserError, match=words):
        registry.load(str(directory))


def test_a_config_json_missing_a_required_key_is_a_user_error(tmp_path, written):
    directory = copy_of(written("llama-mha-untied")[1], tmp_path / "m")
    raw = json.loads((directory / "config.json").read_text())
    del raw["num_attention_heads"]
    (directory / "config.json").write_text(json.dumps(raw))
    with pytest.raises(UserError, match="num_attention_heads"):
        registry.load(str(directory))


def test_a_config_json_that_contradicts_the_weights_is_a_user_error(tmp_path, written):
    directory = copy_of(written("llama-mha-untied")[1], tmp_path / "m")
    _edit_config(directory, intermediate_size=96)  # the weights are 128 wide
    with pytest.raises(UserError):
        registry.load(str(directory))


def test_a_directory_without_weights_or_tokenizer_is_a_user_error(tmp_path, written):
    _, src = written("llama-mha-untied")
    directory = tmp_path / "m"
    directory.mkdir()
    (directory / "config.json").write_bytes((src / "config.json").read_bytes())
    with pytest.raises(UserError, match="safetensors"):
        registry.load(str(directory))
    for f in src.glob("*.safetensors"):
        (directory / f.name).write_bytes(f.read_bytes())
    with pytest.raises(UserError, match="tokenizer.json"):
        registry.load(str(directory))


def test_a_minimal_config_json_gets_the_defaults_transformers_gives_it(tmp_path, tokenizer_files, vocab):
    """A hand-written config.json naming only the shapes: no eps, head_dim, kv heads, rope or tying."""
    raw = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64,
           "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 8, "vocab_size": vocab}
    (tmp_path / "config.json").write_text(json.dumps(raw))
    ref_model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.from_pretrained(tmp_path))
    with torch.no_grad():
        for name, p in ref_model.named_parameters():
            if name.endswith("norm.weight"):
                p.add_(0.3 * torch.randn(p.shape))
    ref_model.float().eval().config._attn_implementation = "eager"
    directory = write_model(ref_model, tokenizer_files, tmp_path / "m")
    (directory / "config.json").write_text(json.dumps(raw))  # back to the minimal file
    cfg = transformers.AutoConfig.from_pretrained(directory)
    assert cfg.rms_norm_eps == ref_model.config.rms_norm_eps  # transformers reads it as the model was made
    ids = random_ids(vocab, (1, SEQ), seed=6)
    with torch.no_grad():
        ours = registry.load(str(directory)).model(ids)
    assert rel(ours, hf_logits(ref_model, ids)) < 1e-5


CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<<SYS>>default<</SYS>>\n{% endif %}"
    "{% if message['role'] == 'system' %}<<SYS>>{{ message['content'] | trim }}<</SYS>>\n"
    "{% else %}[{{ message['role'] | upper }}] {{ message['content'] }}{{ eos_token }}\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}[ASSISTANT] {% endif %}"
)
MESSAGES = [
    [{"role": "user", "content": "hi"}],
    [{"role": "system", "content": "  be brief  "}, {"role": "user", "content": "def f(x):"},
     {"role": "assistant", "content": "return x"}, {"role": "user", "content": "naïve 🙂"}],
]


@pytest.mark.parametrize("where", ["tokenizer_config.json", "chat_template.jinja"])
def test_a_directory_chat_template_renders_as_transformers_renders_it(where, tmp_path, written):
    directory = copy_of(written("llama-gqa-tied")[1], tmp_path / "m")
    config = {"eos_token": EOS, "bos_token": EOS, "tokenizer_class": "PreTrainedTokenizerFast"}
    if where == "tokenizer_config.json":
        config["chat_template"] = CHAT_TEMPLATE
    else:
        (directory / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    tok = registry.load(str(directory)).tokenizer
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(directory))
    for messages in MESSAGES:
        text = tok.apply_chat_template(messages)
        assert text == hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        assert text.startswith(EOS) and text.endswith("[ASSISTANT] ")
        assert tok.encode_chat(text) == hf_tok(text, add_special_tokens=False)["input_ids"]
        assert tok.apply_chat_template(messages, add_generation_prompt=False) == \
            hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)


def test_a_chat_template_is_compiled_once():
    from geex.models.tokenizers.hf import _compile

    assert _compile(CHAT_TEMPLATE) is _compile(CHAT_TEMPLATE)  # rendering per request reuses it


def test_a_tokenizer_that_adds_bos_adds_it_as_transformers_does(tmp_path, written):
    from tokenizers import processors

    directory = copy_of(written("llama-gqa-tied")[1], tmp_path / "m")
    t = Tokenizer.from_file(str(directory / "tokenizer.json"))
    bos = t.token_to_id(EOS)
    t.post_processor = processors.TemplateProcessing(single=f"{EOS} $A", special_tokens=[(EOS, bos)])
    t.save(str(directory / "tokenizer.json"))
    tok = registry.load(str(directory)).tokenizer
    hf_tok = transformers.AutoTokenizer.from_pretrained(str(directory))
    for text in ["def f(x):", "x"]:
        assert tok.encode(text) == hf_tok(text)["input_ids"]
        assert tok.encode(text)[0] == bos
        assert tok.encode_chat(text) == hf_tok(text, add_special_tokens=False)["input_ids"]
        assert tok.encode_chat(text)[0] != bos


def test_generation_stops_at_the_end_of_the_context(written, vocab):
    ref_model, directory = written("llama-gqa-tied")
    loaded = registry.load(str(directory), dtype=torch.float32)
    n_positions = ref_model.config.max_position_embeddings  # 128
    prompt = random_ids(vocab, (n_positions - 3,), seed=7).tolist()
    (got,) = generate(loaded.model, loaded.tokenizer, [prompt], 10, ignore_eos=True)
    assert got.token_ids == hf_greedy(ref_model, prompt, 3)
    with pytest.raises(UserError, match="context"):
        generate(loaded.model, loaded.tokenizer, [prompt + [1, 2, 3]], 1)
