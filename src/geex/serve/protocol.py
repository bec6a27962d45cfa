"""Request bodies of the OpenAI-compatible endpoints (pydantic; unknown fields are ignored, as
OpenAI's own server and vLLM do: clients send vendor extras).

Shapes are checked here (wrong types: 422); values that need the model or the tokenizer (the
context length, the prompt's size) are checked by the endpoint (400).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_N = 8  # choices per prompt (they share the prompt's prefill through the prefix cache)
MAX_LOGPROBS = 20
MAX_PROMPTS = 16  # prompts a completions request (with n choices each, they enter the queue as one unit)
MAX_STOP = 32  # stop strings a request (every token checks each: the scheduler's thread pays for them)
MAX_STOP_CHARS = 1000  # characters a stop string
MAX_EXTRA_FILES = 64  # other files a completion at the cursor may carry as context


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StreamOptions(_Body):
    include_usage: bool = False


class SamplingFields(_Body):
    """What every generating endpoint accepts besides its prompt."""

    model: str | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    top_k: int | None = Field(default=None, ge=-1)
    n: int = Field(default=1, ge=1, le=MAX_N)
    stop: str | list[str] | None = None
    stop_token_ids: list[int] | None = None
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    stream: bool = False
    stream_options: StreamOptions | None = None
    ignore_eos: bool = False
    user: str | None = None

    def stop_list(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ExtraFile(_Body):
    """Another file of the project as context (llama.cpp's ``input_extra`` chunk)."""

    filename: str = Field(default="", max_length=1000)
    text: str


class CodeFields(_Body):
    """Completion at the cursor: the code context and how the completion ends (geex extras, also
    accepted inside the openai client's ``extra_body``)."""

    language: str | None = None  # selects the language tag of CodeGeeX models and CodeGeeX4's ###LANGUAGE
    filename: str | None = Field(default=None, max_length=1000)
    repo_name: str | None = Field(default=None, max_length=1000)
    input_extra: list[ExtraFile] = Field(default_factory=list, max_length=MAX_EXTRA_FILES)
    mode: Literal["free", "line", "block"] | None = None
    n_indent: int | None = Field(default=None, ge=0, le=1000)
    max_time_ms: float | None = Field(default=None, gt=0)


class CompletionRequest(SamplingFields, CodeFields):
    """``POST /v1/completions``. ``prompt``: a string, a list of strings, token ids or lists of ids;
    ``suffix``: the code after the cursor (fill-in-the-middle, with a string prompt)."""

    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = 16  # OpenAI's default
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=MAX_LOGPROBS)
    suffix: str | None = None


class ContentPart(_Body):
    """One of OpenAI's content parts; only text parts carry text (images are ignored)."""

    type: str = "text"
    text: str | None = None


class ChatMessage(_Body):
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        """The message's text (OpenAI's content parts: the ``text`` of each text part)."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text or "" for p in self.content if p.type == "text")


class ChatCompletionRequest(SamplingFields):
    """``POST /v1/chat/completions``."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_LOGPROBS)


class TokenizeRequest(_Body):
    """``POST /tokenize``: vLLM's ``prompt`` or llama.cpp's ``content``."""

    model: str | None = None
    prompt: str | None = None
    content: str | None = None


class DetokenizeRequest(_Body):
    model: str | None = None
    tokens: list[int]


class LlamaFields(_Body):
    """What llama.cpp's native ``/completion`` and ``/infill`` take besides their prompt (its names and
    defaults; samplers geex does not have, ``id_slot`` and ``t_max_prompt_ms`` are ignored)."""

    model: str | None = None
    n_predict: int | None = Field(default=None, ge=-1)
    stream: bool = False
    stop: str | list[str] | None = None
    temperature: float = Field(default=0.8, ge=0, le=2)
    top_k: int = Field(default=40, ge=-1)
    top_p: float = Field(default=0.95, gt=0, le=1)
    seed: int = Field(default=-1, ge=-1, lt=2**63)  # -1: random
    ignore_eos: bool = False
    n_indent: int = Field(default=0, ge=0, le=1000)  # > 0: end at a line indented less (block mode)
    t_max_predict_ms: float | None = Field(default=None, ge=0)
    response_fields: list[str] | None = None
    cache_prompt: bool = True  # always: every slot keeps its prompt
    # geex extras for a completion at the cursor
    language: str | None = None
    filename: str | None = Field(default=None, max_length=1000)
    repo_name: str | None = Field(default=None, max_length=1000)
    mode: Literal["free", "line", "block"] | None = None

    def sampling_fields(self) -> SamplingFields:
        return SamplingFields(model=self.model, temperature=self.temperature, top_k=self.top_k, top_p=self.top_p,
                              stop=self.stop, seed=None if self.seed < 0 else self.seed, ignore_eos=self.ignore_eos)

    def code_fields(self, input_extra: list[ExtraFile] | None = None) -> CodeFields:
        mode = self.mode or ("block" if self.n_indent else None)
        return CodeFields(language=self.language, filename=self.filename, repo_name=self.repo_name,
                          input_extra=input_extra or [], mode=mode, n_indent=self.n_indent or None,
                          max_time_ms=self.t_max_predict_ms or None)


class InfillRequest(LlamaFields):
    """``POST /infill``: ``input_prefix`` and ``input_suffix`` around the cursor, ``input_extra`` other
    files, ``prompt`` what was typed of the middle already (after ``FIM_MID``)."""

    input_prefix: str = ""
    input_suffix: str = ""
    input_extra: list[ExtraFile] = Field(default_factory=list, max_length=MAX_EXTRA_FILES)
    prompt: str = ""

    def code_fields(self, input_extra: list[ExtraFile] | None = None) -> CodeFields:
        return super().code_fields(self.input_extra)


class LlamaCompletionRequest(LlamaFields):
    """``POST /completion``: a text prompt (special tokens written out are special) or token ids."""

    prompt: str | list[int]


class TaskFields(SamplingFields):
    """What the task routes (``/v1/geex/*``) take besides their input."""

    max_tokens: int | None = None
    chat: bool | None = None  # use the chat template (default: when the model has one)
    return_prompt: bool = False


class GenerateRequest(TaskFields):
    """``POST /v1/geex/generate``: code from a description (``prompt`` is accepted for it)."""

    description: str | None = None
    prompt: str | None = None
    language: str
    header: str = ""  # a signature the code starts with (base models)


class TranslateRequest(TaskFields):
    """``POST /v1/geex/translate``."""

    code: str
    src_lang: str
    dst_lang: str


class ExplainRequest(TaskFields):
    """``POST /v1/geex/explain``."""

    code: str
    language: str
    style: Literal["line_comments", "docstring", "summary"] = "line_comments"


class CodeGeeXRequest(_Body):
    """CodeGeeX v1's hosted API (``/api/v2/multilingual_code_*``): the prefix (or, to translate, the
    code) as ``prompt``; credentials travel in the body (``apikey``, ``apisecret``: ignored here,
    the server's own key, if any, is checked on the request's headers)."""

    prompt: str
    n: int = Field(default=1, ge=1, le=MAX_N)
    lang: str | None = None
    src_lang: str | None = None
    dst_lang: str | None = None
    temperature: float | None = Field(default=0.8, ge=0, le=2)
    top_p: float | None = Field(default=0.95, gt=0, le=1)
    top_k: int | None = Field(default=0, ge=-1)
    stop: list[str] | None = None
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    max_tokens: int | None = None
    apikey: str | None = None
    apisecret: str | None = None


class MistralFimRequest(SamplingFields, CodeFields):
    """``POST /v1/fim/completions`` (Mistral's Codestral FIM): ``prompt`` before the cursor, ``suffix``
    after; ``random_seed`` is Mistral's name for the seed."""

    prompt: str
    suffix: str | None = None
    max_tokens: int | None = None
    min_tokens: int | None = None  # accepted, not enforced
    random_seed: int | None = Field(default=None, ge=0, lt=2**63)

    def model_post_init(self, _context) -> None:
        if self.seed is None and self.random_seed is not None:
            self.seed = self.random_seed
