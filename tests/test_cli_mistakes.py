"""User mistakes, one input at a time, through the real CLI: each gives one line that names the
problem (and what to do), exit status 2, and no traceback."""

from __future__ import annotations

import gzip
import io
import json
import random
import subprocess
import sys
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from geex.cli import main


def fails(capsys, args: list[str], *fragments: str) -> str:
    """Run ``geex ARGS``; it must end with exit status 2 and one error line holding every fragment."""
    assert main([str(a) for a in args]) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert "Traceback" not in err + captured.out
    lines = [line for line in err.splitlines() if not line.startswith("WARNING: ")]
    assert len(lines) == 1 and lines[0].startswith("geex: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ------------------------------------------------------------------------------ --device
@pytest.mark.parametrize("command", [
    ["generate", "--prompt", "x", "--max-new-tokens", "1"],
    ["humanevalx", "generate", "--out", "{tmp}/s.jsonl"],
    ["humanevalx", "run", "--out", "{tmp}/run"],
], ids=["generate", "humanevalx-generate", "humanevalx-run"])
@pytest.mark.parametrize("device, message", [
    ("foo", "--device 'foo' is not a device: use cpu, cuda or cuda:N"),
    ("cuda:x", "--device 'cuda:x' is not a device"),
    ("mps", "--device 'mps': geex runs on cpu or cuda"),
])
def test_bad_device(capsys, tmp_path, command, device, message):
    fails(capsys, [a.format(tmp=tmp_path) for a in command] + ["--device", device], message)


def test_bad_device_in_train(capsys, tmp_path):
    fails(capsys, ["train", "--set", f"data.path={tmp_path}", "--set", "run.device=foo"],
          "run.device 'foo' is not a device: use cpu, cuda or cuda:N")


def test_device_names_are_case_insensitive(capsys, tmp_path):
    from geex.devices import resolve_device

    assert [resolve_device(d) for d in ("cpu", "CPU", " Cpu ", "cpu:0")] == ["cpu"] * 4
    # the device passes; the next check (the data) is what fails
    fails(capsys, ["train", "--set", f"data.path={tmp_path}", "--set", "run.device=CPU"],
          f"{tmp_path} is not a packed dataset")


# ------------------------------------------------------------------------------ prompt file
def test_prompt_file_not_utf8(capsys, tmp_path):
    path = tmp_path / "prompt.py"
    path.write_bytes("# café\ndef f():\n".encode("latin-1"))
    fails(capsys, ["generate", "--prompt-file", path], f"--prompt-file {path} is not UTF-8 text",
          "at byte 6")


def test_prompt_file_is_a_directory(capsys, tmp_path):
    fails(capsys, ["generate", "--prompt-file", tmp_path], f"cannot read --prompt-file {tmp_path}: Is a directory")


# ------------------------------------------------------------------------------ data build
def _code_files(n: int = 12) -> dict[str, bytes]:
    """Python files that pass every default filter (over 1 KB, mostly letters, no duplicates)."""
    rng = random.Random(0)
    words = ["alpha", "beta", "gamma", "value", "result", "index", "count", "total", "item", "node", "tree"]
    files = {}
    for i in range(n):
        lines = [f"def f{i}_{j}(x):\n    return x + {rng.randint(0, 999)}  # {' '.join(rng.choices(words, k=8))}"
                 for j in range(30)]
        files[f"pkg/f{i}.py"] = ("\n".join(lines) + "\n").encode()
    return files


def _tar(path: Path, files: dict[str, bytes], mode: str = "w") -> bytes:
    with tarfile.open(path, mode) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path.read_bytes()


def _build(tmp_path: Path, source: Path) -> list[str]:
    return ["data", "build", source, "--out", tmp_path / "corpus", "-q", "-j", "1"]


def test_complete_archives_build(capsys, tmp_path):
    """The archives the next tests break, whole: every file kept."""
    files = _code_files()
    _tar(tmp_path / "a.tar.gz", files, "w:gz")
    with zipfile.ZipFile(tmp_path / "a.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            z.writestr(name, data)
    for name in ("a.tar.gz", "a.zip"):
        assert main(["data", "build", str(tmp_path / name), "--out", str(tmp_path / f"out-{name}"),
                     "-q", "-j", "1"]) == 0
        stats = json.loads((tmp_path / f"out-{name}" / "stats.json").read_text())
        assert stats["kept"]["python"]["files"] == len(files)


def test_truncated_zip(capsys, tmp_path):
    path = tmp_path / "src.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in _code_files().items():
            z.writestr(name, data)
    path.write_bytes(path.read_bytes()[:3000])  # the central directory, at the end, is gone
    fails(capsys, _build(tmp_path, path), f"corpus source {path}: not a readable zip archive (truncated or corrupt")


def test_corrupt_zip_member(capsys, tmp_path):
    path = tmp_path / "src.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in _code_files().items():
            z.writestr(name, data)
    data = bytearray(path.read_bytes())
    first = data.index(b"def f0_0")
    data[first:first + 8] = b"XXXXXXXX"  # the first member's bytes no longer match its CRC
    path.write_bytes(bytes(data))
    fails(capsys, _build(tmp_path, path), f"corpus source {path}: truncated or corrupt zip archive at member pkg/f0.py")


@pytest.mark.parametrize("mode, suffix, message", [
    ("w", ".tar", "truncated or corrupt tar archive at member pkg/"),
    ("w:gz", ".tar.gz", "truncated or corrupt tar archive at member pkg/"),
    ("w:xz", ".tar.xz", "truncated or corrupt tar archive at member pkg/"),
    ("w:bz2", ".tar.bz2", "not a readable tar archive (truncated or corrupt"),  # one 900 KB block: nothing readable
])
def test_truncated_tar(capsys, tmp_path, mode, suffix, message):
    path = tmp_path / f"src{suffix}"
    data = _tar(path, _code_files(), mode)
    path.write_bytes(data[: len(data) * 2 // 3])
    fails(capsys, _build(tmp_path, path), f"corpus source {path}: {message}")


def test_tar_cut_between_members(capsys, tmp_path):
    """tarfile itself takes a header cut off at the end for the end of the archive."""
    path = tmp_path / "src.tar"
    _tar(path, _code_files())
    with tarfile.open(path) as t:
        cut = t.getmembers()[5].offset  # where the 6th member's header starts
    path.write_bytes(path.read_bytes()[:cut])
    fails(capsys, _build(tmp_path, path), f"corpus source {path}: truncated or corrupt tar archive",
          "ends without tar's end-of-archive blocks")


def test_archive_named_so_but_not_one(capsys, tmp_path):
    path = tmp_path / "src.tar.gz"
    path.write_bytes(b"<html>404 not found</html>")
    fails(capsys, _build(tmp_path, path), f"corpus source {path}: not a readable tar archive")


@pytest.mark.parametrize("line, message", [
    (b'{"code": "x\xff"}', "1: not UTF-8 text"),
    (b"[1, 2]", "1: expected a JSON object, got an array"),
    (b'"just a string"', "1: expected a JSON object, got a string"),
    (b'{"code": 5}', "1: 'code' must be a string, got a number"),
    (b'{"content": ["a"]}', "1: 'content' must be a string, got an array"),
    (b'{"text": {"a": 1}}', "1: 'text' must be a string, got an object"),
    (b'{"code": "x", "path": ["a"]}', "1: 'path' must be a string, got an array"),
    (b'{"code": "x", "language": 3}', "1: 'language' must be a string, got a number"),
    (b'{"name": "x"}', "1: expected a JSON object with a 'code', 'content' or 'text' string"),
    (b'{"code": "x"', "1: not valid JSON"),
])
def test_corpus_jsonl_lines(capsys, tmp_path, line, message):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(line + b"\n")
    fails(capsys, _build(tmp_path, path), f"{path}:{message}")
    if b"path" not in line and b"language" not in line:  # fields the tokenizer does not read
        fails(capsys, ["tokenizer", "train", path, "--out", tmp_path / "tok"], f"{path}:{message}")


@pytest.mark.parametrize("line, message", [
    (b'{"code": "x\xff"}', "2: not UTF-8 text"),
    (b"[1, 2]", "2: expected a JSON object, got an array"),
    (b'{"code": 5}', "2: 'code' must be a string, got a number"),
    (b'{"code": null, "text": 5}', "2: 'text' must be a string, got a number"),
])
def test_pack_input_lines(capsys, tmp_path, tokenizer_dir, line, message):
    path = tmp_path / "shard.jsonl"
    path.write_bytes(b'{"code": "def f(): pass"}\n' + line + b"\n")
    fails(capsys, ["data", "pack", path, "--tokenizer", tokenizer_dir, "--out", tmp_path / "p", "-q", "-j", "1"],
          f"{path}:{message}")


def test_gzip_corpus_cut_short(capsys, tmp_path):
    path = tmp_path / "docs.jsonl.gz"
    data = gzip.compress(b"".join(json.dumps({"code": f"print({i})" * 40}).encode() + b"\n" for i in range(200)))
    path.write_bytes(data[: len(data) // 2])
    fails(capsys, _build(tmp_path, path), f"{path}: truncated or corrupt gzip data after line")


# ------------------------------------------------------------------------------ empty validation split
def test_empty_validation_split_warns_at_pack_and_train_says_what_to_do(capsys, tmp_path, tokenizer_dir):
    shard = tmp_path / "shard.jsonl"
    shard.write_text("".join(json.dumps({"code": f"def f{i}(x):\n    return x * {i}\n" * 20}) + "\n" for i in range(8)))
    r = subprocess.run([sys.executable, "-m", "geex", "data", "pack", str(shard), "--tokenizer", str(tokenizer_dir),
                        "--out", str(tmp_path / "p"), "--seq-len", "16", "--valid", "0", "-q", "-j", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    err = r.stderr
    assert "WARNING: the validation split is empty: 0 documents, 0 tokens" in err
    assert "geex train will need run.eval_every=0" in err
    fails(capsys, ["train", "--set", f"data.path={tmp_path / 'p'}", "--set", f"run.out={tmp_path / 'run'}"],
          f"{tmp_path / 'p'}: the validation split is empty", "set run.eval_every=0")
    assert main(["train", "--set", f"data.path={tmp_path / 'p'}", "--set", f"run.out={tmp_path / 'run'}",
                 "--set", "run.eval_every=0", "--set", "optim.max_steps=1", "-q"]) == 0


def test_pack_with_a_validation_split_does_not_warn(capsys, tmp_path, tokenizer_dir):
    shard = tmp_path / "shard.jsonl"
    shard.write_text("".join(json.dumps({"code": f"def f{i}(x):\n    return x * {i}\n" * 20}) + "\n" for i in range(8)))
    with warnings.catch_warnings(record=True) as caught:
        assert main(["data", "pack", str(shard), "--tokenizer", str(tokenizer_dir), "--out", str(tmp_path / "p"),
                     "--seq-len", "16", "--valid", "0.5", "-q", "-j", "1"]) == 0
    index = json.loads((tmp_path / "p" / "index.json").read_text())
    assert index["valid"]["sequences"] > 0 and index["train"]["sequences"] > 0
    assert not [w for w in caught if "split is empty" in str(w.message)]


# ------------------------------------------------------------------------------ samples files
def _rows(dataset_dir: Path, lang: str) -> list[dict]:
    """The published problems, read here without geex's loader."""
    with gzip.open(dataset_dir / f"humaneval_{lang}.jsonl.gz", "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _evaluate(tmp_path: Path, samples: Path, *extra: str) -> list[str]:
    # --no-cache: every verdict comes from running the program here, not from an earlier run's cache
    return ["humanevalx", "evaluate", str(samples), "--out", str(tmp_path / "eval"), "-q", "-j", "1", "--no-cache",
            *extra]


def _verdicts(tmp_path: Path) -> dict[str, str]:
    lines = (tmp_path / "eval" / "results.jsonl").read_text().splitlines()
    return {(r := json.loads(x))["sample_id"]: r["verdict"] for x in lines}


def test_samples_path_is_a_directory(capsys, tmp_path):
    fails(capsys, _evaluate(tmp_path, tmp_path), f"{tmp_path} is a directory, not a samples file")
    (tmp_path / "samples.jsonl").write_text("")
    fails(capsys, _evaluate(tmp_path, tmp_path), f"(did you mean {tmp_path / 'samples.jsonl'}?)")


def test_gzip_samples_are_read_whatever_their_name(capsys, tmp_path, dataset_dir):
    rows = _rows(dataset_dir, "python")[:2]
    text = "".join(json.dumps({"task_id": r["task_id"], "completion": r["canonical_solution"]}) + "\n" for r in rows)
    path = tmp_path / "samples.jsonl"  # gzip inside, though the name does not say so
    path.write_bytes(gzip.compress(text.encode()))
    assert main(_evaluate(tmp_path, path)) == 0
    assert _verdicts(tmp_path) == {"Python/0#0": "passed", "Python/1#0": "passed"}


def test_task_ids_in_other_casings_are_read_as_humanevalx_spells_them(capsys, tmp_path, dataset_dir):
    py, cpp = _rows(dataset_dir, "python"), _rows(dataset_dir, "cpp")
    samples = [("python/0", py[0]), ("PYTHON/1", py[1]), ("py/2", py[2]), ("cpp/3", cpp[3])]
    path = tmp_path / "s.jsonl"
    path.write_text("".join(json.dumps({"task_id": t, "completion": r["canonical_solution"]}) + "\n" for t, r in samples))
    assert main(_evaluate(tmp_path, path)) == 0
    assert _verdicts(tmp_path) == {"Python/0#0": "passed", "Python/1#0": "passed", "Python/2#0": "passed",
                                   "CPP/3#0": "passed"}


@pytest.mark.parametrize("task_id, message", [
    ("HumanEval/0", "unknown task id 'HumanEval/0': HumanEval-X calls it 'Python/0'"),
    ("humaneval/12", "unknown task id 'humaneval/12': HumanEval-X calls it 'Python/12'"),
    ("Kotlin/0", "unknown task id 'Kotlin/0': unknown language 'Kotlin'"),
    ("Python/164", "unknown task 'Python/164' (Python's are Python/0 .. Python/163)"),
    ("Python/zero", "malformed task id 'Python/zero'"),
])
def test_unknown_task_ids_say_what_the_id_should_be(capsys, tmp_path, task_id, message):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps({"task_id": task_id, "completion": "    return 1\n"}) + "\n")
    fails(capsys, _evaluate(tmp_path, path), f"{path}:1: {message}")


def _bigcode(path: Path, generations: list[list[str]]) -> Path:
    path.write_text(json.dumps(generations))
    return path


def test_bigcode_generations_with_the_prompt_in_front(capsys, tmp_path, dataset_dir):
    """As bigcode-evaluation-harness saves them: the prompt (stripped) + the completion, a list per task."""
    rows = _rows(dataset_dir, "python")[:3]
    generations = [[r["prompt"].strip() + "\n" + r["canonical_solution"], r["prompt"].strip() + "\n    return None\n"]
                   for r in rows]
    path = _bigcode(tmp_path / "generations.json", generations)  # the name says nothing: the prompts tell
    assert main(_evaluate(tmp_path, path)) == 0
    verdicts = _verdicts(tmp_path)
    assert [verdicts[f"Python/{i}#0"] for i in range(3)] == ["passed"] * 3
    assert [verdicts[f"Python/{i}#1"] for i in range(3)] == ["wrong_answer"] * 3


def test_bigcode_generations_named_by_language(capsys, tmp_path, dataset_dir):
    rows = _rows(dataset_dir, "cpp")[:2]
    path = _bigcode(tmp_path / "generations_humanevalsynthesize-cpp.json", [[r["canonical_solution"]] for r in rows])
    assert main(_evaluate(tmp_path, path)) == 0
    assert _verdicts(tmp_path) == {"CPP/0#0": "passed", "CPP/1#0": "passed"}


def test_bigcode_generations_with_languages_given(capsys, tmp_path, dataset_dir):
    rows = _rows(dataset_dir, "js")[:2]
    path = _bigcode(tmp_path / "generations.json", [[r["canonical_solution"]] for r in rows])
    assert main(_evaluate(tmp_path, path, "--languages", "js")) == 0
    assert _verdicts(tmp_path) == {"JavaScript/0#0": "passed", "JavaScript/1#0": "passed"}


def test_bigcode_generations_whose_language_cannot_be_told(capsys, tmp_path):
    path = _bigcode(tmp_path / "generations.json", [["    return 1\n"], ["    return 2\n"]])
    fails(capsys, _evaluate(tmp_path, path), f"{path} is a bigcode generations file",
          "language cannot be told", "--languages")
    fails(capsys, _evaluate(tmp_path, path, "--languages", "python,cpp"), "pass exactly one with --languages",
          "(got python, cpp)")
    named = _bigcode(tmp_path / "python_to_cpp.json", [["    return 1\n"]])
    fails(capsys, _evaluate(tmp_path, named), "language cannot be told", "its name mentions python, cpp")


@pytest.mark.parametrize("content, message", [
    ([["ok"], "not a list"], "task 1 holds a string; a bigcode generations file is a list of lists of strings"),
    ([["ok"], ["fine", 3]], "task 1 holds a number"),
    ([{"task_id": "Python/0", "completion": "x"}], "is a JSON array, not JSON Lines"),
    ([["x"]] * 165, "holds 165 tasks, but Python has 164 problems"),
])
def test_bigcode_generations_malformed(capsys, tmp_path, content, message):
    path = _bigcode(tmp_path / "generations_python.json", content)
    fails(capsys, _evaluate(tmp_path, path), message)


# ------------------------------------------------------------------------------ geex train --set
@pytest.mark.parametrize("setting, message", [
    ("optim.lr=abc", "--set optim.lr=abc: expected a number"),
    ("optim.lr=nan", "--set optim.lr=nan: expected a finite number"),
    ("optim.lr=-1", "config: optim.lr = -1.0 (must be a positive number)"),
    ("optim.lr=0", "config: optim.lr = 0.0 (must be a positive number)"),
    ("optim.min_lr=1", "config: optim.min_lr = 1.0 (must be between 0 and optim.lr)"),
    ("optim.eps=0", "config: optim.eps = 0.0 (must be a positive number)"),
    ("optim.eps=-1e-8", "config: optim.eps = -1e-08 (must be a positive number)"),
    ("optim.betas=0.9", "--set optim.betas=0.9: expected 2 comma-separated numbers, e.g. 0.9,0.95"),
    ("optim.betas=0.9,x", "--set optim.betas=0.9,x: expected a number"),
    ("optim.betas=1.5,0.9", "config: optim.betas = [1.5, 0.9] (must be two numbers in [0, 1)"),
    ("optim.grad_clip=-1", "config: optim.grad_clip = -1.0 (must be 0 (off) or more)"),
    ("optim.weight_decay=-0.1", "config: optim.weight_decay = -0.1 (must be 0 or more)"),
    ("optim.warmup_steps=1.5", "--set optim.warmup_steps=1.5: expected a whole number"),
    ("optim.warmup_steps=-1", "config: optim.warmup_steps = -1 (must be 0 or more)"),
    ("optim.max_steps=0", "config: optim.max_steps = 0 (must be at least 1)"),
    ("optim.max_steps=ten", "--set optim.max_steps=ten: expected a whole number"),
    ("data.batch_size=0", "config: data.batch_size = 0 (must be at least 1)"),
    ("run.eval_sequences=0", "config: run.eval_sequences = 0 (must be at least 1)"),
    ("data.seed=-1", "config: data.seed = -1 (must be 0 or more)"),
    ("run.compile=maybe", "--set run.compile=maybe: expected true or false (also 1/0, yes/no, on/off)"),
    ("run.compile=2", "--set run.compile=2: expected true or false"),
    ("model.preset=codegeex-7b", "config: model.preset = 'codegeex-7b' (known: codegeex-13b"),
    ("optim.learning_rate=1", "config: unknown field optim.learning_rate (known: betas, eps"),
    ("optimizer.lr=1", "--set 'optimizer.lr=1': unknown section 'optimizer'"),
    ("lr=1", "--set 'lr=1': expected section.field=value"),
])
def test_train_set_values(capsys, tmp_path, setting, message):
    fails(capsys, ["train", "--set", f"data.path={tmp_path}", "--set", setting], message)


@pytest.mark.parametrize("toml, message", [
    ("[optim]\nmax_steps = true\n", "config: optim.max_steps should be a whole number, got True"),
    ("[optim]\nbetas = [\"a\", 0.9]\n", "config: optim.betas should be a list of 2 numbers, got ['a', 0.9]"),
    ("[optim]\nbetas = [0.9]\n", "config: optim.betas should be a list of 2 numbers, got [0.9]"),
    ("[optim]\nlr = nan\n", "config: optim.lr = nan (must be a positive number)"),
    ("[run]\ncompile = 1\n", "config: run.compile should be true or false, got 1"),
    ("[run]\ndevice = 3\n", "config: run.device should be a string, got 3"),
])
def test_train_config_file_values(capsys, tmp_path, toml, message):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    fails(capsys, ["train", "--config", path, "--set", f"data.path={tmp_path}"], message)


def test_train_booleans_accept_the_usual_spellings_in_any_case():
    from geex.train.config import load_config

    for text, value in [("true", True), ("TRUE", True), ("1", True), ("Yes", True), ("on", True), ("ON", True),
                        ("false", False), ("False", False), ("0", False), ("no", False), ("NO", False), ("off", False)]:
        assert load_config(None, [f"run.compile={text}"]).run.compile is value, text
    assert load_config(None, ["optim.betas=(0.8, 0.99)"]).optim.betas == (0.8, 0.99)
    assert load_config(None, ["optim.betas=[0.8,0.99]"]).optim.betas == (0.8, 0.99)


# ------------------------------------------------------------------------------ model directories and files
LLAMA = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
         "intermediate_size": 96, "vocab_size": 50}


@pytest.mark.parametrize("changes, message", [
    ({"hidden_size": 100, "num_attention_heads": 3}, "hidden_size 100 is not divisible by num_attention_heads 3"),
    ({"num_key_value_heads": 3}, "num_attention_heads 4 is not divisible by num_key_value_heads 3"),
    ({"num_hidden_layers": "2"}, "num_hidden_layers must be a whole number, got '2'"),
    ({"hidden_size": -64}, "hidden_size must be at least 1, got -64"),
    ({"vocab_size": 0}, "vocab_size must be at least 1, got 0"),
    ({"num_attention_heads": 0}, "num_attention_heads must be at least 1, got 0"),
    ({"intermediate_size": 96.5}, "intermediate_size must be a whole number, got 96.5"),
    ({"num_hidden_layers": True}, "num_hidden_layers must be a whole number, got True"),
    ({"rms_norm_eps": "1e-5"}, "rms_norm_eps must be a number, got '1e-5'"),
    ({"rms_norm_eps": -1}, "rms_norm_eps must be above 0, got -1"),
    ({"rope_theta": 0}, "rope_theta must be above 0, got 0"),
    ({"tie_word_embeddings": "yes"}, "tie_word_embeddings must be true or false, got 'yes'"),
    ({"head_dim": 15}, "the head size 15 is odd"),
    ({"rope_scaling": [1]}, "rope_scaling must be an object, got [1]"),
])
def test_hf_config_json_with_wrong_types_or_impossible_shapes(capsys, tmp_path, changes, message):
    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "config.json").write_text(json.dumps({**LLAMA, **changes}))
    fails(capsys, ["generate", "--prompt", "x", "--model", directory], f"{directory / 'config.json'}: {message}")


@pytest.mark.parametrize("changes, message", [
    ({"n_embd": 100, "n_head": 3}, "n_embd 100 is not divisible by n_head 3"),
    ({"n_layer": "2"}, "n_layer must be a whole number, got '2'"),
    ({"n_positions": -1}, "n_positions must be at least 1, got -1"),
    ({"vocab_size": 100, "padded_vocab_size": 64}, "padded_vocab_size 64 is smaller than vocab_size 100"),
    ({"layernorm_eps": "small"}, "layernorm_eps must be a number, got 'small'"),
])
def test_geex_config_json_with_wrong_types_or_impossible_shapes(capsys, tmp_path, changes, message):
    directory = tmp_path / "model"
    directory.mkdir()
    config = {"format": "geex/codegeex/1", "architecture": "codegeex", "n_layer": 2, "n_embd": 64, "n_head": 4,
              "n_positions": 128, "vocab_size": 100, "padded_vocab_size": 128}
    (directory / "config.json").write_text(json.dumps({**config, **changes}))
    fails(capsys, ["generate", "--prompt", "x", "--model", directory], f"{directory / 'config.json'}: {message}")


def test_config_json_that_is_not_an_object(capsys, tmp_path):
    (tmp_path / "config.json").write_text("[1, 2]")
    fails(capsys, ["generate", "--prompt", "x", "--model", tmp_path], f"{tmp_path / 'config.json'}: expected a JSON object")


@pytest.fixture(scope="module")
def default_gguf() -> Path:
    from geex.models.registry import default_model_path

    return default_model_path()


@pytest.mark.parametrize("keep, message", [
    (10, "it ends inside its header, at byte 10"),
    (100_000, "it ends inside its metadata, at byte 100,000"),
])
def test_gguf_cut_inside_its_header(capsys, tmp_path, default_gguf, keep, message):
    path = tmp_path / "model.gguf"
    with open(default_gguf, "rb") as f:
        path.write_bytes(f.read(keep))
    fails(capsys, ["generate", "--prompt", "x", "--model", path], f"truncated GGUF file {path}: {message}")


@pytest.mark.parametrize("missing", [1000, 90_000_000])
def test_gguf_cut_inside_its_tensors(capsys, tmp_path, default_gguf, missing):
    size = default_gguf.stat().st_size  # a complete file's tensors end where it ends
    path = tmp_path / "model.gguf"
    with open(default_gguf, "rb") as f:
        path.write_bytes(f.read(size - missing))
    fails(capsys, ["generate", "--prompt", "x", "--model", path],
          f"truncated GGUF file {path}: {size - missing:,} bytes, but its tensors end at byte {size:,} "
          f"({missing:,} bytes missing")


@pytest.mark.parametrize("content", [bytes(random.Random(1).randrange(256) for _ in range(5000)), b"hello\n", b""],
                         ids=["random", "text", "empty"])
def test_a_file_that_is_no_model(capsys, tmp_path, content):
    path = tmp_path / "weights.bin"
    path.write_bytes(content)
    fails(capsys, ["generate", "--prompt", "x", "--model", path],
          f"{path} is not a model geex reads: not a GGUF file (no 'GGUF' signature), not a PyTorch checkpoint")
    named = tmp_path / "weights.gguf"
    named.write_bytes(content)
    fails(capsys, ["generate", "--prompt", "x", "--model", named], f"{named} is not a GGUF file")


def test_int4_where_groups_do_not_divide_a_layer(capsys, tmp_path, tokenizer_dir):
    """A width of 80: no INT4 group the kernels tile (a power of two of at least 32) divides it; INT8 does."""
    import torch

    from geex.models.codegeex import CodeGeeXConfig
    from geex.models.formats.codegeex import save_geex
    from geex.models.fusion import checkpoint_state_dict

    cfg = CodeGeeXConfig(n_layer=1, n_embd=80, n_head=4, n_positions=64, vocab_size=50400, padded_vocab_size=50432)
    model = cfg.build()
    model.init_weights(torch.Generator().manual_seed(0))
    directory = save_geex(checkpoint_state_dict(model), cfg, tmp_path / "model")
    for name in ("vocab.json", "merges.txt", "added_tokens.json"):
        (directory / name).write_bytes((tokenizer_dir / name).read_bytes())
    fails(capsys, ["generate", "--prompt", "x", "--model", directory, "--quantize", "int4"],
          "--quantize int4: layer transformer.layers.0.attention.qkv has 80 input features",
          "use --quantize int8 instead")
    assert main(["generate", "--prompt", "def f():", "--model", str(directory), "--quantize", "int8",
                 "--max-new-tokens", "2", "--greedy"]) == 0


# ------------------------------------------------------------------------------ option values out of range
@pytest.mark.parametrize("args, message", [
    (["data", "build", "src", "-o", "out", "--near-dup", "2"], "argument --near-dup: must be above 0 and at most 1: 2"),
    (["data", "build", "src", "-o", "out", "--min-bytes", "-5"], "argument --min-bytes: must be at least 0: -5"),
    (["data", "build", "src", "-o", "out", "--min-alpha", "1.5"], "argument --min-alpha: must be at least 0 and at most 1"),
    (["data", "build", "src", "-o", "out", "--max-mean-line", "0"], "argument --max-mean-line: must be above 0: 0"),
    (["data", "pack", "s", "--tokenizer", "t", "-o", "o", "--valid", "1"], "argument --valid: must be at least 0 and below 1"),
    (["data", "pack", "s", "--tokenizer", "t", "-o", "o", "--valid", "nan"], "argument --valid: must be at least 0"),
    (["generate", "--prompt", "x", "--top-p", "0"], "argument --top-p: must be above 0 and at most 1: 0"),
    (["generate", "--prompt", "x", "--top-k", "-1"], "argument --top-k: must be at least 0: -1"),
    (["generate", "--prompt", "x", "--top-k", "many"], "argument --top-k: not an integer: 'many'"),
])
def test_option_values_out_of_range(capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        main(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and "Traceback" not in err


def test_model_convert_of_a_file_that_is_no_checkpoint(capsys, tmp_path):
    path = tmp_path / "codegeex_13b.pt"
    path.write_bytes(b"<html>this download failed</html>")
    fails(capsys, ["model", "convert", path, tmp_path / "out"], f"{path} is not a PyTorch checkpoint (neither zip nor pickle")


def test_library_parameters_are_shown_as_the_commands_flags(capsys):
    """A library error names `pairs`, `n`, `batch_size`; the command shows the flags that set them."""
    from geex.cli import build_parser, command_flags
    from geex.errors import spelled

    parser = build_parser()
    flags = command_flags(parser, parser.parse_args(["humanevalx", "run", "--out", "x"]))
    assert spelled("`n`, `batch_size` and `max_new_tokens`; `use_cache`, `workers`", flags) == \
        "--n, --batch-size and --max-new-tokens; --no-cache, --workers"
    assert spelled("`overrides` and `pairs`", command_flags(parser, parser.parse_args(["train"]))) == \
        "--set and `pairs`"  # a parameter the command does not take stays as the library wrote it
    fails(capsys, ["humanevalx", "generate", "--out", "x.jsonl", "--task", "translation", "--pairs", "python:python"],
          "--pairs: 'python:python' translates a language into itself")


def test_a_ray_address_where_no_cluster_answers_is_one_line_at_once(capsys, tmp_path):
    """Ray itself retries an address where nothing listens for minutes; geex says so at once."""
    import time

    from tests.conftest import free_port

    pytest.importorskip("ray")
    t0 = time.monotonic()
    fails(capsys, ["humanevalx", "evaluate", "canonical", "--languages", "python", "--out", tmp_path / "e",
                   "--ray", f"127.0.0.1:{free_port()}"], "--ray: nothing answers at 127.0.0.1:", "ray start --head")
    fails(capsys, ["humanevalx", "generate", "--out", tmp_path / "s.jsonl", "--ray", "head-without-port"],
          "--ray 'head-without-port' is not HOST:PORT")
    assert time.monotonic() - t0 < 30
