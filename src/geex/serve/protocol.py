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


class CompletionRequest(SamplingFields):
    """``POST /v1/completions``. ``prompt``: a string, a list of strings, token ids or lists of ids."""

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
