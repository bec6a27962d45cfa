"""``geex.humanevalx.generate``: the work list (units, batches, pairs), the samples file, and resume.

Expected prompts are rebuilt here from the published data files (read with ``gzip`` + ``json``; the
first problems of every language carry no data fix) and CodeGeeX's prompt formats written out in
this file. Completions come from a fake backend whose texts the test controls, except in the last
test, which kills a real ``geex humanevalx generate`` run of the default model and resumes it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from geex.engine.sampling import SamplingParams
from geex.errors import UserError
from geex.humanevalx.assembly import generation_prompt, translation_prompt
from geex.humanevalx.dataset import load_language
from geex.humanevalx.generate import GenerateConfig, batches, iter_samples, parse_pairs, run_generate, units
from geex.languages import get_language
from geex.languages.cleanup import cleanup

ORDER = ["python", "cpp", "java", "js", "go", "rust"]
TAGS = {"python": "# language: Python", "cpp": "// language: C++", "java": "// language: Java",
        "js": "// language: JavaScript", "go": "// language: Go", "rust": "// language: Rust"}
DISPLAY = {"python": "Python", "cpp": "C++", "java": "Java", "js": "JavaScript", "go": "Go", "rust": "Rust"}
PREFIX = {"python": "Python", "cpp": "CPP", "java": "Java", "js": "JavaScript", "go": "Go", "rust": "Rust"}
RECORD_KEYS = {"task_id", "language", "completion_id", "prompt", "raw", "completion", "finish_reason", "batch"}


def L(name: str):
    return get_language(name)


def raw_rows(dataset_dir: Path, lang: str) -> dict[int, dict]:
    """The published problems of one language, by number, straight from the data file."""
    with gzip.open(dataset_dir / f"humaneval_{lang}.jsonl.gz", "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return {int(r["task_id"].split("/")[1]): r for r in rows}


def expected_generation_prompt(row: dict, lang: str) -> str:
    """CodeGeeX's generation prompt: the language tag line, then the prompt. Rust's published prompt is
    only the docstring; it goes before the signature (the last top-level ``fn`` line of the declaration)."""
    text = row["prompt"]
    if lang == "rust":
        decl = row["declaration"]
        cut = max(m.start() for m in re.finditer(r"^(?:pub\s+)?fn ", decl, re.M))
        text = decl[:cut] + text.lstrip("\n") + decl[cut:]
    return TAGS[lang] + "\n" + text


def expected_translation_prompt(src_row: dict, src: str, tgt_row: dict, tgt: str) -> str:
    return (f"code translation\n{DISPLAY[src]}:\n{src_row['declaration']}\n{src_row['canonical_solution'].rstrip()}\n"
            f"{DISPLAY[tgt]}:\n{tgt_row['declaration']}")


def gen_cfg(dataset_dir, languages, limit=3, n=2, **kw) -> GenerateConfig:
    return GenerateConfig(task="generation", languages=[L(x) for x in languages], n=n, limit=limit,
                          dataset=str(dataset_dir), **kw)


def tr_cfg(dataset_dir, pairs, limit=2, n=1, **kw) -> GenerateConfig:
    return GenerateConfig(task="translation", languages=[], pairs=[(L(s), L(t)) for s, t in pairs], n=n,
                          limit=limit, dataset=str(dataset_dir), **kw)


# -- pairs ---------------------------------------------------------------------------------------

def test_parse_pairs_all_is_the_30_ordered_pairs():
    pairs = parse_pairs("all")
    assert [(s.name, t.name) for s, t in pairs] == [(s, t) for s in ORDER for t in ORDER if s != t]
    assert len(pairs) == 30
    assert parse_pairs(" all ") == pairs


def test_parse_pairs_list_keeps_order_and_accepts_aliases():
    assert [(s.name, t.name) for s, t in parse_pairs("python:cpp,js:go")] == [("python", "cpp"), ("js", "go")]
    assert [(s.name, t.name) for s, t in parse_pairs("js:go, python:cpp")] == [("js", "go"), ("python", "cpp")]
    assert [(s.name, t.name) for s, t in parse_pairs("Python:C++,javascript:golang")] == [
        ("python", "cpp"), ("js", "go")]


@pytest.mark.parametrize("spec", ["python", "python-cpp", "python:python", "cpp:CPP", "python:cobol",
                                  "cobol:python", "", "python:cpp,", ":cpp", "python:"])
def test_parse_pairs_rejects_bad_specs(spec):
    with pytest.raises(UserError):
        parse_pairs(spec)


def test_a_repeated_pair_is_generated_once(dataset_dir):
    """A pair named twice is merged into its first place (not rejected, not generated twice)."""
    pairs = parse_pairs("python:cpp,js:go,Python:C++")
    assert [(s.name, t.name) for s, t in pairs] == [("python", "cpp"), ("js", "go")]
    twice = GenerateConfig(task="translation", languages=[], pairs=pairs, limit=1, dataset=str(dataset_dir))
    once = GenerateConfig(task="translation", languages=[], pairs=parse_pairs("python:cpp,js:go"), limit=1,
                          dataset=str(dataset_dir))
    ids = [(u.source_language.name, u.task_id, u.completion_id) for u in units(twice)]
    assert len(ids) == len(set(ids)) == 2
    assert ids == [(u.source_language.name, u.task_id, u.completion_id) for u in units(once)]


# -- units and batches ---------------------------------------------------------------------------

def test_generation_units_count_order_and_prompts(dataset_dir):
    langs, limit, n = ["python", "cpp", "java", "js", "go", "rust"], 3, 2
    todo = units(gen_cfg(dataset_dir, langs, limit=limit, n=n))
    assert len(todo) == len(langs) * limit * n
    expected_order = [(f"{PREFIX[lang]}/{p}", lang, i) for lang in langs for p in range(limit) for i in range(n)]
    assert [(u.task_id, u.language.name, u.completion_id) for u in todo] == expected_order
    problems = {lang: {p.task_id: p for p in load_language(L(lang), dataset_dir)} for lang in langs}
    for u in todo:
        lang = u.language.name
        row = raw_rows(dataset_dir, lang)[int(u.task_id.split("/")[1])]
        assert u.source_language is None
        assert u.prompt.text == expected_generation_prompt(row, lang)
        assert u.prompt.text.startswith(TAGS[lang] + "\n")
        assert u.prompt.text == generation_prompt(problems[lang][u.task_id], with_tag=True)


def test_generation_units_follow_the_given_language_order_and_all_problems(dataset_dir):
    todo = units(gen_cfg(dataset_dir, ["go", "python"], limit=None, n=1))
    numbers = {lang: sorted(raw_rows(dataset_dir, lang)) for lang in ("go", "python")}
    assert len(numbers["go"]) == len(numbers["python"]) == 164
    assert [u.task_id for u in todo] == [f"Go/{i}" for i in numbers["go"]] + [f"Python/{i}" for i in numbers["python"]]


def test_translation_units_count_order_and_prompts(dataset_dir):
    pairs, limit, n = [("python", "cpp"), ("js", "go"), ("rust", "python")], 2, 3
    todo = units(tr_cfg(dataset_dir, pairs, limit=limit, n=n))
    assert len(todo) == len(pairs) * limit * n
    expected = [(s, f"{PREFIX[t]}/{p}", t, i) for s, t in pairs for p in range(limit) for i in range(n)]
    assert [(u.source_language.name, u.task_id, u.language.name, u.completion_id) for u in todo] == expected
    for u in todo:
        s, t = u.source_language.name, u.language.name
        number = int(u.task_id.split("/")[1])
        src_row, tgt_row = raw_rows(dataset_dir, s)[number], raw_rows(dataset_dir, t)[number]
        assert u.prompt.text == expected_translation_prompt(src_row, s, tgt_row, t)
        assert u.prompt.text.startswith("code translation\n")
        assert src_row["canonical_solution"].rstrip() in u.prompt.text
        assert u.prompt.text.endswith(tgt_row["declaration"])
        assert tgt_row["prompt"] not in u.prompt.text or tgt_row["prompt"] in tgt_row["declaration"]  # no docstring
        source = next(p for p in load_language(L(s), dataset_dir) if p.number == number)
        target = next(p for p in load_language(L(t), dataset_dir) if p.number == number)
        assert u.prompt.text == translation_prompt(source, target)


def test_translation_all_pairs_count(dataset_dir):
    cfg = GenerateConfig(task="translation", languages=[], pairs=parse_pairs("all"), limit=1, n=2,
                         dataset=str(dataset_dir))
    todo = units(cfg)
    assert len(todo) == 30 * 1 * 2
    assert {(u.source_language.name, u.language.name) for u in todo} == {
        (s, t) for s in ORDER for t in ORDER if s != t}


def test_unknown_task_is_a_user_error(dataset_dir):
    with pytest.raises(UserError):
        units(GenerateConfig(task="completion", languages=[L("python")], dataset=str(dataset_dir)))


@pytest.mark.parametrize("size", [1, 3, 4, 5, 7, 100])
def test_batches_are_consecutive_one_language_and_bounded(dataset_dir, size):
    langs, limit, n = ["python", "js", "cpp"], 3, 2
    todo = units(gen_cfg(dataset_dir, langs, limit=limit, n=n))
    plan = batches(todo, size)
    assert [u for b in plan for u in b] == todo  # consecutive, every unit once, in order
    for b in plan:
        assert 1 <= len(b) <= size
        assert len({u.language for u in b}) == 1
    per_lang = limit * n  # each language's units are cut into full batches and one remainder
    expected = []
    for _ in langs:
        expected += [size] * (per_lang // size) + ([per_lang % size] if per_lang % size else [])
    assert [len(b) for b in plan] == expected


def test_translation_batches_split_by_target_not_source(dataset_dir):
    todo = units(tr_cfg(dataset_dir, [("python", "js"), ("cpp", "js"), ("js", "go")], limit=2, n=1))
    plan = batches(todo, 8)
    # python->js and cpp->js share their target: one batch of 4; then js->go
    assert [[(u.source_language.name, u.task_id) for u in b] for b in plan] == [
        [("python", "JavaScript/0"), ("python", "JavaScript/1"), ("cpp", "JavaScript/0"), ("cpp", "JavaScript/1")],
        [("js", "Go/0"), ("js", "Go/1")]]


# -- run_generate with a fake backend ------------------------------------------------------------

@dataclass
class FakeCompletion:
    text: str
    finish_reason: str


class FakeBackend:
    """Deterministic text from (prompt, seed): a finished function followed by junk the cleanup must cut,
    or (for a third of the prompts) an unfinished body that ran out of tokens."""

    name = "fake"

    def __init__(self, model: str = "fake-model", fail_at_call: int | None = None) -> None:
        self.model = model
        self.calls: list[dict] = []
        self.fail_at_call = fail_at_call

    def complete(self, prompts, language, params, max_new_tokens, seed):
        if self.fail_at_call is not None and len(self.calls) == self.fail_at_call:
            raise KeyboardInterrupt  # a crash in the middle of the run
        self.calls.append({"prompts": list(prompts), "language": language.name, "params": params,
                           "max_new_tokens": max_new_tokens, "seed": seed})
        return [FakeCompletion(*fake_text(p, language.name, seed)) for p in prompts]


def fake_hash(prompt: str, seed: int) -> str:
    return hashlib.sha256(f"{seed}\0{prompt}".encode()).hexdigest()[:10]


def fake_text(prompt: str, lang: str, seed: int) -> tuple[str, str]:
    h = fake_hash(prompt, seed)
    if int(h, 16) % 3 == 0:
        return (f"    x = '{h}' + ü" if lang == "python" else f"  let x = \"{h}ü\";"), "length"
    if lang == "python":
        return f"    return '{h}'\n\ndef extra():\n    pass\n", "stop"
    return f"  return \"{h}\";\n}}\nconsole.log(f());\n", "stop"


def fake_completion(prompt: str, lang: str, seed: int) -> str:
    """What the cleanup keeps of ``fake_text`` (written out, not computed by the code under test)."""
    h = fake_hash(prompt, seed)
    if int(h, 16) % 3 == 0:
        return fake_text(prompt, lang, seed)[0]
    return f"    return '{h}'\n\n" if lang == "python" else f"  return \"{h}\";\n}}"


def lines_of(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


CFG_KW = dict(params=SamplingParams(temperature=0.8, top_p=0.9), max_new_tokens=64, seed=11, batch_size=4)


def py_js_cfg(dataset_dir, **over) -> GenerateConfig:
    kw = {**CFG_KW, **over}
    return gen_cfg(dataset_dir, ["python", "js"], limit=kw.pop("limit", 3), n=kw.pop("n", 2), **kw)


def test_run_generate_writes_header_and_one_record_per_unit(tmp_path, dataset_dir):
    out = tmp_path / "sub" / "samples.jsonl"
    backend = FakeBackend()
    assert run_generate(py_js_cfg(dataset_dir), backend, out, progress=False) == out
    header, *records = lines_of(out)
    assert header["geex"] == "samples/1"
    assert header["task"] == "generation" and header["backend"] == "fake" and header["model"] == "fake-model"
    assert header["seed"] == 11 and header["n"] == 2 and header["batch_size"] == 4 and header["limit"] == 3
    assert header["max_new_tokens"] == 64 and header["languages"] == ["python", "js"]
    assert header["sampling"]["temperature"] == 0.8 and header["sampling"]["greedy"] is False

    # 2 languages x 3 problems x 2 samples, batches of 4 within a language: [4, 2] + [4, 2]
    assert len(records) == 12
    sizes = [4, 2, 4, 2]
    batch_of = [i for i, s in enumerate(sizes) for _ in range(s)]
    expected_ids = [(f"{PREFIX[lang]}/{p}", lang, c) for lang in ("python", "js") for p in range(3) for c in range(2)]
    assert [(r["task_id"], r["language"], r["completion_id"]) for r in records] == expected_ids
    assert [r["batch"] for r in records] == batch_of
    # batch i is sampled with seed + i, with the config's parameters, one target language a call
    assert [c["seed"] for c in backend.calls] == [11, 12, 13, 14]
    assert [len(c["prompts"]) for c in backend.calls] == sizes
    assert [c["language"] for c in backend.calls] == ["python", "python", "js", "js"]
    assert all(c["max_new_tokens"] == 64 and c["params"] == CFG_KW["params"] for c in backend.calls)
    rows = {lang: raw_rows(dataset_dir, lang) for lang in ("python", "js")}
    for r, b in zip(records, batch_of):
        assert set(r) == RECORD_KEYS
        seed = 11 + b
        row = rows[r["language"]][int(r["task_id"].split("/")[1])]
        assert r["prompt"] == expected_generation_prompt(row, r["language"])
        text, finish = fake_text(r["prompt"], r["language"], seed)
        assert r["raw"] == text and r["finish_reason"] == finish
        assert r["completion"] == fake_completion(r["prompt"], r["language"], seed)
        assert r["completion"] == cleanup(r["language"], r["raw"])
    assert {r["finish_reason"] for r in records} == {"stop", "length"}  # both kinds exercised
    assert any("ü" in r["raw"] for r in records) and "ü" in out.read_text(encoding="utf-8")  # UTF-8, not \u escapes
    assert list(iter_samples(out)) == records


def test_run_generate_translation_records(tmp_path, dataset_dir):
    out = tmp_path / "tr.jsonl"
    backend = FakeBackend()
    cfg = tr_cfg(dataset_dir, [("python", "js"), ("js", "python")], limit=2, n=1, batch_size=8, seed=3)
    run_generate(cfg, backend, out, progress=False)
    header, *records = lines_of(out)
    assert header["task"] == "translation" and header["pairs"] == ["python:js", "js:python"]
    assert [(r["source_language"], r["task_id"], r["language"]) for r in records] == [
        ("python", "JavaScript/0", "js"), ("python", "JavaScript/1", "js"),
        ("js", "Python/0", "python"), ("js", "Python/1", "python")]
    assert [c["seed"] for c in backend.calls] == [3, 4]
    for r in records:
        assert set(r) == RECORD_KEYS | {"source_language"}
        n = int(r["task_id"].split("/")[1])
        s, t = r["source_language"], r["language"]
        assert r["prompt"] == expected_translation_prompt(raw_rows(dataset_dir, s)[n], s, raw_rows(dataset_dir, t)[n], t)
        assert r["completion"] == fake_completion(r["prompt"], t, 3 + r["batch"])


def test_run_generate_argument_errors(tmp_path, dataset_dir):
    for over in ({"n": 0}, {"batch_size": 0}, {"max_new_tokens": 0}):
        with pytest.raises(UserError):
            run_generate(py_js_cfg(dataset_dir, **over), FakeBackend(), tmp_path / "x.jsonl", progress=False)
    with pytest.raises(UserError):
        run_generate(tr_cfg(dataset_dir, []), FakeBackend(), tmp_path / "y.jsonl", progress=False)
    not_samples = tmp_path / "notes.jsonl"
    not_samples.write_text("hello\n")
    with pytest.raises(UserError):
        run_generate(py_js_cfg(dataset_dir), FakeBackend(), not_samples, progress=False)
    assert not_samples.read_text() == "hello\n"


@pytest.mark.parametrize("first_line", ["[1, 2]", '"hello"', "42", "null"])
def test_existing_json_lines_file_that_is_not_samples(tmp_path, dataset_dir, first_line):
    other = tmp_path / "other.jsonl"
    other.write_text(first_line + "\n")
    with pytest.raises(UserError):
        run_generate(py_js_cfg(dataset_dir), FakeBackend(), other, progress=False)
    assert other.read_text() == first_line + "\n"


# -- resume ----------------------------------------------------------------------------------------

@pytest.fixture
def complete_file(tmp_path, dataset_dir) -> tuple[Path, bytes]:
    """(a) a finished run: the reference bytes."""
    out = tmp_path / "a.jsonl"
    run_generate(py_js_cfg(dataset_dir), FakeBackend(), out, progress=False)
    return out, out.read_bytes()


def line_spans(data: bytes) -> list[tuple[int, int, dict]]:
    """(start, end incl. newline, record) of every line."""
    spans, pos = [], 0
    for line in data.split(b"\n")[:-1]:
        spans.append((pos, pos + len(line) + 1, json.loads(line)))
        pos += len(line) + 1
    return spans


def test_rerun_of_a_finished_file_changes_nothing(complete_file, dataset_dir):
    out, reference = complete_file
    backend = FakeBackend()
    run_generate(py_js_cfg(dataset_dir), backend, out, progress=False)
    assert backend.calls == []
    assert out.read_bytes() == reference


@pytest.mark.parametrize("k", [0, 1, 2, 3])
def test_torn_line_in_batch_k_is_redone_from_batch_k(complete_file, dataset_dir, k):
    out, reference = complete_file
    spans = line_spans(reference)
    start, end, _ = next(s for s in spans[1:] if s[2]["batch"] == k)  # first line of batch k
    if k == 1:  # also: a torn *last* line of a batch (its earlier lines complete)
        start, end, _ = [s for s in spans[1:] if s[2]["batch"] == k][-1]
    out.write_bytes(reference[:start + (end - start) // 2])  # crash in the middle of the line
    backend = FakeBackend()
    run_generate(py_js_cfg(dataset_dir), backend, out, progress=False)
    assert out.read_bytes() == reference
    assert [c["seed"] for c in backend.calls] == [11 + b for b in range(k, 4)]


@pytest.mark.parametrize("drop", [1, 3, 5, 12])
def test_missing_complete_lines_are_regenerated(complete_file, dataset_dir, drop):
    out, reference = complete_file
    spans = line_spans(reference)
    kept = spans[:len(spans) - drop]
    out.write_bytes(reference[:kept[-1][1]])  # whole lines, the last batch(es) cut short
    first_missing = spans[len(spans) - drop][2]["batch"]
    backend = FakeBackend()
    run_generate(py_js_cfg(dataset_dir), backend, out, progress=False)
    assert out.read_bytes() == reference
    assert [c["seed"] for c in backend.calls] == [11 + b for b in range(first_missing, 4)]


def test_cut_at_a_batch_boundary_keeps_every_earlier_batch(complete_file, dataset_dir):
    out, reference = complete_file
    spans = line_spans(reference)
    last_of_batch_1 = [s for s in spans[1:] if s[2]["batch"] == 1][-1]
    out.write_bytes(reference[:last_of_batch_1[1]])
    backend = FakeBackend()
    run_generate(py_js_cfg(dataset_dir), backend, out, progress=False)
    assert out.read_bytes() == reference
    assert [c["seed"] for c in backend.calls] == [13, 14]


def test_header_only_or_empty_file_starts_over(complete_file, dataset_dir):
    out, reference = complete_file
    for prefix in (reference[:reference.index(b"\n") + 1], b""):
        out.write_bytes(prefix)
        backend = FakeBackend()
        run_generate(py_js_cfg(dataset_dir), backend, out, progress=False)
        assert out.read_bytes() == reference
        assert len(backend.calls) == 4


def test_crash_in_the_backend_then_resume(tmp_path, complete_file, dataset_dir):
    _, reference = complete_file
    out = tmp_path / "crashed.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_generate(py_js_cfg(dataset_dir), FakeBackend(fail_at_call=2), out, progress=False)
    assert {r["batch"] for r in lines_of(out)[1:]} == {0, 1}
    backend = FakeBackend()
    run_generate(py_js_cfg(dataset_dir), backend, out, progress=False)
    assert out.read_bytes() == reference
    assert [c["seed"] for c in backend.calls] == [13, 14]


def _changed_settings(message: str, path: Path) -> set[str]:
    return set(re.findall(r"[a-z_]+", message.replace(str(path), "")))


@pytest.mark.parametrize("change, setting", [
    ({"seed": 12}, "seed"), ({"n": 3}, "n"), ("model", "model"), ({"batch_size": 2}, "batch_size"),
    ({"max_new_tokens": 65}, "max_new_tokens"), ({"limit": 2}, "limit"),
    ({"params": SamplingParams(temperature=0.2, top_p=0.9)}, "sampling"),
])
def test_other_settings_are_refused_and_the_file_is_untouched(complete_file, dataset_dir, change, setting):
    out, reference = complete_file
    for cut in (len(reference), line_spans(reference)[5][0] + 7):  # finished, and torn
        out.write_bytes(reference[:cut])
        before = out.stat().st_mtime_ns
        backend = FakeBackend(model="other-model" if change == "model" else "fake-model")
        cfg = py_js_cfg(dataset_dir, **(change if isinstance(change, dict) else {}))
        with pytest.raises(UserError) as err:
            run_generate(cfg, backend, out, progress=False)
        assert setting in _changed_settings(str(err.value), out)
        assert backend.calls == []
        assert out.read_bytes() == reference[:cut] and out.stat().st_mtime_ns == before
        assert not out.with_suffix(".jsonl.tmp").exists()


def test_other_languages_are_refused(complete_file, dataset_dir):
    out, reference = complete_file
    cfg = gen_cfg(dataset_dir, ["python", "cpp"], **CFG_KW)
    with pytest.raises(UserError) as err:
        run_generate(cfg, FakeBackend(), out, progress=False)
    assert "languages" in _changed_settings(str(err.value), out)
    assert out.read_bytes() == reference


# -- a real kill -----------------------------------------------------------------------------------

GEN_ARGS = ["--languages", "python", "--limit", "3", "--n", "2", "--batch-size", "2", "--max-new-tokens", "48",
            "--seed", "5", "-q"]


def _geex_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "geex", "humanevalx", "generate", *GEN_ARGS, "--out", str(out)]


def _complete_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path, dataset_dir):
    env = {**os.environ, "GEEX_HUMANEVALX": str(dataset_dir)}
    reference = tmp_path / "reference.jsonl"
    r = subprocess.run(_geex_cmd(reference), capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ref_bytes = reference.read_bytes()
    assert ref_bytes.count(b"\n") == 1 + 6
    ref_records = [json.loads(x) for x in ref_bytes.splitlines()[1:]]
    assert [x["batch"] for x in ref_records] == [0, 0, 1, 1, 2, 2]
    assert json.loads(ref_bytes.splitlines()[0])["sampling"]["greedy"] is False

    killed = tmp_path / "killed.jsonl"
    for _attempt in range(3):
        killed.unlink(missing_ok=True)
        proc = subprocess.Popen(_geex_cmd(killed), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                cwd=tmp_path)
        deadline = time.monotonic() + 90
        while _complete_lines(killed) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
        if proc.returncode == -signal.SIGKILL and _complete_lines(killed) < 7:
            break
    else:
        pytest.fail("could not kill the generation between its first and last batch")
    partial = killed.read_bytes()
    assert partial.startswith(ref_bytes.splitlines(keepends=True)[0])  # the same header
    assert ref_bytes.startswith(partial[:partial.rindex(b"\n") + 1])  # finished lines are the reference's
    r = subprocess.run(_geex_cmd(killed), capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert killed.read_bytes() == ref_bytes


# -- prompt styles ----------------------------------------------------------------------------------

class FakeChatBackend(FakeBackend):
    """Answers a chat like an instruct model: prose, then the whole function restated in a fence
    (its body: ``return '<hash>'``), then prose."""

    def chat(self, conversations, params, max_new_tokens, seed):
        self.calls.append({"conversations": conversations, "seed": seed})
        out = []
        for c in conversations:
            h = fake_hash(c[-1]["content"], seed)
            out.append(FakeCompletion(f"Sure:\n```python\nfrom typing import *\n\ndef {FAKE_ENTRY}(numbers, threshold):\n"
                                      f"    \"\"\"doc\"\"\"\n    return '{h}'\n```\nThat is all.", "eos"))
        return out


FAKE_ENTRY = "has_close_elements"  # Python/0's entry point: the fake answers Python/0 right, the others not


def test_chat_records_keep_the_answer_the_completion_and_how_it_was_found(tmp_path, dataset_dir):
    from geex.humanevalx.prompts import GENERATION_INSTRUCTION, PromptStyle

    out = tmp_path / "chat.jsonl"
    backend = FakeChatBackend()
    cfg = gen_cfg(dataset_dir, ["python"], limit=2, n=1, seed=5, style=PromptStyle("chat", system="Be brief."))
    run_generate(cfg, backend, out, progress=False)
    header, *records = lines_of(out)
    assert header["template"] == "chat/1"
    assert header["prompt_style"] == {"style": "chat", "system": "Be brief.", "generation": GENERATION_INSTRUCTION,
                                      "translation": header["prompt_style"]["translation"]}
    (call,) = backend.calls
    assert call["seed"] == 5 and [m["role"] for m in call["conversations"][0]] == ["system", "user"]
    first, second = records
    assert first["prompt"] == call["conversations"][0][1]["content"] and "```python" in first["prompt"]
    h = fake_hash(first["prompt"], 5)
    assert first["raw"].startswith("Sure:\n```python") and first["completion"] == f"    return '{h}'\n"
    assert first["extraction"] == {"method": "function", "block": 0, "fence": "python"}
    assert second["extraction"]["method"] == "body"  # Python/1 asks for another function: no definition found


def test_few_shot_records_name_their_examples(tmp_path, dataset_dir):
    from geex.humanevalx.prompts import PromptStyle

    out = tmp_path / "fs.jsonl"
    cfg = gen_cfg(dataset_dir, ["python", "js"], limit=3, n=2, seed=4, style=PromptStyle("few-shot", shots=2))
    run_generate(cfg, FakeBackend(), out, progress=False)
    header, *records = lines_of(out)
    assert header["template"] == "few-shot/1" and header["prompt_style"]["shots"] == 2
    assert header["prompt_style"]["seed"] == 4
    for r in records:
        assert len(r["shots"]) == 2 and r["task_id"] not in r["shots"]
        assert all(t.split("/")[0] == r["task_id"].split("/")[0] for t in r["shots"])
    # the examples may come from the whole language, not only the --limit problems
    assert any(int(t.split("/")[1]) >= 3 for r in records for t in r["shots"])
    # both samples of a problem show the same examples (the rule is per problem)
    by_task = {}
    for r in records:
        by_task.setdefault(r["task_id"], set()).add(tuple(r["shots"]))
    assert all(len(v) == 1 for v in by_task.values())


def test_a_completion_style_file_cannot_be_resumed_as_chat(tmp_path, dataset_dir):
    from geex.humanevalx.prompts import PromptStyle

    out = tmp_path / "s.jsonl"
    run_generate(gen_cfg(dataset_dir, ["python"], limit=1, n=1), FakeChatBackend(), out, progress=False)
    with pytest.raises(UserError, match="prompt_style"):
        run_generate(gen_cfg(dataset_dir, ["python"], limit=1, n=1, style=PromptStyle("chat")), FakeChatBackend(),
                     out, progress=False)
