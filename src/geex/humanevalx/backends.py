"""Where benchmark completions come from, behind one small interface.

- ``native``: a geex model (``geex.models.registry``: the default model, presets, directories, GGUF,
  the Hub) decoded by geex's engine; the language's stop rule ends a row while decoding.
- ``hf``: Hugging Face ``transformers`` (any causal LM directory or Hub id), with the same stop
  rule as a stopping criterion.
- ``openai``: any OpenAI-compatible ``/v1/completions`` endpoint (vLLM, llama.cpp's server, TGI ...),
  requests in parallel with retries; the stop rule is applied to the text afterwards.

``complete(prompts, language, params, max_new_tokens, seed)`` returns one ``Completion`` a prompt;
``chat(conversations, params, max_new_tokens, seed)`` one a conversation (a list of role/content
messages), rendered by the model's own chat template (native, hf) or sent to the endpoint's
``/v1/chat/completions`` (openai), and decoded to the end of the answer (no stop rule: the answer
is prose and fenced code, taken apart by ``geex.humanevalx.extraction``). The same prompts, seed
and batch give the same completions (the native and hf backends seed their generators from
``seed``; an endpoint receives it as ``seed``).

It is the benchmark's adapter, so it lives with the harness: only ``native`` uses geex's engine.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import torch

from geex.engine.sampling_params import SamplingParams
from geex.errors import UserError
from geex.languages import Language
from geex.languages.cleanup import is_finished

BACKENDS = ("native", "hf", "openai")


@dataclass
class Completion:
    text: str  # the raw continuation
    finish_reason: str  # "eos", "stop" (the stop rule), "length", or the endpoint's own


class Backend(Protocol):
    name: str
    model: str

    def complete(self, prompts: Sequence[str], language: Language | None, params: SamplingParams,
                 max_new_tokens: int, seed: int) -> list[Completion]: ...

    def chat(self, conversations: Sequence[list[dict]], params: SamplingParams, max_new_tokens: int,
             seed: int) -> list[Completion]: ...


class NativeBackend:
    name = "native"

    def __init__(self, model: str | None, device: str = "cpu", dtype: torch.dtype | None = None,
                 quantize: str | None = None, speculate: int = 0) -> None:
        from geex.models import registry

        self.speculate = speculate  # prompt-lookup drafts a step: the same samples, faster on repetitive text
        self.loaded = registry.load(model, dtype=dtype, device=device, quantize=quantize)
        self.model = self.loaded.name

    def complete(self, prompts, language, params, max_new_tokens, seed):
        from geex.engine.generate import generate

        outs = generate(self.loaded.model, self.loaded.tokenizer, list(prompts), max_new_tokens, params,
                        language=language, seed=seed, speculate=self.speculate)
        return [Completion(o.text, o.finish_reason) for o in outs]

    def chat(self, conversations, params, max_new_tokens, seed):
        tok = self.loaded.tokenizer
        if self.loaded.chat_template is None:
            raise UserError(f"`prompt_style` chat: {self.model} has no chat template (use completion or few-shot)")
        ids = [tok.encode_chat(tok.apply_chat_template(c)) for c in conversations]
        return self.complete(ids, None, params, max_new_tokens, seed)


class HFBackend:
    """``transformers`` ``generate`` with left padding and the language stop rule per row."""

    name = "hf"

    def __init__(self, model: str, device: str = "cpu", dtype: torch.dtype | None = None) -> None:
        try:
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise UserError("`backend` hf needs the transformers package (pip install transformers)") from None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.lm = AutoModelForCausalLM.from_pretrained(model, dtype=dtype or torch.float32).to(device).eval()
        except OSError as e:
            raise UserError(f"`backend` hf: cannot load {model}: {e}") from None
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model, self.device = model, device

    def chat(self, conversations, params, max_new_tokens, seed):
        if not getattr(self.tokenizer, "chat_template", None):
            raise UserError(f"`prompt_style` chat: {self.model} has no chat template (use completion or few-shot)")
        texts = [self.tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False)
                 for c in conversations]
        return self.complete(texts, None, params, max_new_tokens, seed, special_tokens=False)

    @torch.no_grad()
    def complete(self, prompts, language, params, max_new_tokens, seed, special_tokens: bool = True):
        from transformers import StoppingCriteria, StoppingCriteriaList

        batch = self.tokenizer(list(prompts), return_tensors="pt", padding=True,  # a chat prompt has its own BOS
                               add_special_tokens=special_tokens).to(self.device)
        start = batch.input_ids.shape[1]
        tokenizer = self.tokenizer

        class LanguageStop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                texts = tokenizer.batch_decode(input_ids[:, start:], skip_special_tokens=True)
                return torch.tensor([is_finished(language, t) for t in texts], device=input_ids.device)

        torch.manual_seed(seed)
        sampling = {"do_sample": False} if params.greedy else {
            "do_sample": True, "temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k}
        out = self.lm.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                               stopping_criteria=StoppingCriteriaList([LanguageStop()]) if language else None,
                               **sampling)
        results = []
        for row in out[:, start:]:
            ids = row.tolist()
            ended = tokenizer.eos_token_id in ids
            ids = ids[:ids.index(tokenizer.eos_token_id)] if ended else ids
            text = tokenizer.decode(ids, skip_special_tokens=True)
            # a row the stop rule ended is padded afterwards (with EOS when it is also the pad token)
            finished = language is not None and is_finished(language, text)
            results.append(Completion(text, "stop" if finished else "eos" if ended else "length"))
        return results


class OpenAIBackend:
    """POST ``{base_url}/completions`` (or ``/chat/completions``); ``concurrency`` requests at a time,
    ``retries`` per prompt on connection errors, 429 and 5xx (exponential back-off)."""

    name = "openai"

    def __init__(self, model: str, base_url: str, api_key: str | None = None, concurrency: int = 8,
                 retries: int = 4, timeout_s: float = 600.0) -> None:
        self.model, self.base = model, base_url.rstrip("/")
        self.url = self.base + "/completions"
        self.api_key, self.concurrency, self.retries, self.timeout_s = api_key, concurrency, retries, timeout_s

    def _body(self, params: SamplingParams, max_new_tokens: int, seed: int) -> dict:
        return {"model": self.model, "max_tokens": max_new_tokens, "seed": seed,
                "temperature": 0.0 if params.greedy else params.temperature,
                "top_p": 1.0 if params.greedy else params.top_p}

    def complete(self, prompts, language, params, max_new_tokens, seed):
        body = self._body(params, max_new_tokens, seed)
        with ThreadPoolExecutor(max(1, self.concurrency)) as pool:
            return list(pool.map(lambda p: self._one(self.url, {**body, "prompt": p}), prompts))

    def chat(self, conversations, params, max_new_tokens, seed):
        body = self._body(params, max_new_tokens, seed)
        url = self.base + "/chat/completions"
        with ThreadPoolExecutor(max(1, self.concurrency)) as pool:
            return list(pool.map(lambda c: self._one(url, {**body, "messages": c}), conversations))

    def _one(self, url: str, body: dict) -> Completion:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        for attempt in range(self.retries + 1):
            try:
                request = urllib.request.Request(url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    choice = json.loads(response.read())["choices"][0]
                text = choice["message"].get("content") or "" if "messages" in body else choice.get("text", "")
                return Completion(text, choice.get("finish_reason") or "stop")
            except urllib.error.HTTPError as e:
                if e.code != 429 and e.code < 500 or attempt == self.retries:
                    raise UserError(f"{url}: HTTP {e.code}: {e.read()[:300].decode(errors='replace')}") from None
            except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as e:
                if attempt == self.retries:  # HTTPException: e.g. a connection lost mid-response
                    raise UserError(f"{url}: {getattr(e, 'reason', e)!r}") from None
            except (KeyError, IndexError, ValueError, TypeError, AttributeError) as e:
                raise UserError(f"{url}: not an OpenAI completions response ({e})") from None
            time.sleep(min(30.0, 0.5 * 2 ** attempt))
        raise AssertionError("unreachable")


def make_backend(name: str, model: str | None, *, device: str = "cpu", dtype: torch.dtype | None = None,
                 quantize: str | None = None, base_url: str | None = None, api_key: str | None = None,
                 concurrency: int = 8, speculate: int = 0) -> Backend:
    if speculate and name != "native":
        raise UserError(f"`speculate` works with `backend` native (not {name})")
    if name == "native":
        return NativeBackend(model, device, dtype, quantize, speculate)
    if name == "hf":
        if not model:
            raise UserError("`backend` hf needs a `model` (a directory or Hub id of a causal LM)")
        return HFBackend(model, device, dtype)
    if name == "openai":
        if not base_url or not model:
            raise UserError("`backend` openai needs `base_url` (e.g. http://localhost:8000/v1) and `model`")
        return OpenAIBackend(model, base_url, api_key, concurrency)
    raise UserError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
