"""OpenAI's wire shapes, as far as /openai/v1 serves them: requests (typed loosely,
ranges are checked against the model's parameter schema like on /v1/generate) and
responses (what the official SDKs parse). Unknown request fields are ignored, as
most OpenAI-compatible servers do; fields that ask for something this gateway
cannot honour (``n`` > 1, logprobs, tools other than functions, …) are refused with a
clear 400."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Loose(BaseModel):
    # NaN and Infinity (which Python's JSON reader accepts) are not numbers to send on.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)


# requests
class OpenAIStreamOptions(Loose):
    include_usage: bool | None = None


class OpenAIJsonSchema(Loose):
    name: str = Field(max_length=64)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class OpenAIResponseFormat(Loose):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: OpenAIJsonSchema | None = None


class OpenAIImageURL(Loose):
    url: str = Field(max_length=30_000_000, description="a data: URL (base64)")
    detail: str | None = None


class OpenAITextPart(Loose):
    type: Literal["text"]
    text: str = Field(max_length=1_000_000)


class OpenAIImagePart(Loose):
    type: Literal["image_url"]
    image_url: OpenAIImageURL


class OpenAIRefusalPart(Loose):
    """A refusal the assistant gave earlier, sent back in its turn."""

    type: Literal["refusal"]
    refusal: str = Field(max_length=1_000_000)


OpenAIContentPart = Annotated[
    OpenAITextPart | OpenAIImagePart | OpenAIRefusalPart, Field(discriminator="type")
]


class OpenAIFunctionCall(Loose):
    """A call the model made: ``arguments`` is the JSON text it wrote."""

    name: str
    arguments: str = Field(max_length=1_000_000)


class OpenAIToolCallIn(Loose):
    """An assistant turn's tool call, sent back in the history. ``type`` is checked
    by the translation (only functions are served), so the 400 can name it."""

    id: str
    type: str = "function"
    function: OpenAIFunctionCall | None = None


class OpenAIChatMessageIn(Loose):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[OpenAIContentPart] | None = None
    name: str | None = None
    tool_calls: list[OpenAIToolCallIn] | None = None
    tool_call_id: str | None = None
    function_call: OpenAIFunctionCall | None = None  # legacy, before tool_calls
    # DeepSeek's clients send an assistant turn's reasoning back under this name.
    reasoning_content: str | None = None


class OpenAIFunction(Loose):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class OpenAITool(Loose):
    """A tool the model may call. Only ``function`` tools are served; ``type`` stays a
    string so that another type is refused by name rather than as a schema error."""

    type: str
    function: OpenAIFunction | None = None


class OpenAINamedFunction(Loose):
    name: str


class OpenAINamedToolChoice(Loose):
    type: str
    function: OpenAINamedFunction | None = None


class OpenAISamplingRequest(Loose):
    model: str = Field(min_length=1, max_length=300, examples=["openai:gpt-4o-mini"])
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int | None = Field(default=None, description="Only 1 is supported.")
    stream: bool | None = False
    stream_options: OpenAIStreamOptions | None = None
    logprobs: Any = None
    user: str | None = None


class OpenAIChatCompletionRequest(OpenAISamplingRequest):
    messages: list[OpenAIChatMessageIn] = Field(min_length=1, max_length=2000)
    max_completion_tokens: int | None = None
    response_format: OpenAIResponseFormat | None = None
    tools: list[OpenAITool] | None = None
    tool_choice: Literal["auto", "none", "required"] | OpenAINamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    functions: list[OpenAIFunction] | None = None  # legacy: tools of type function
    function_call: Literal["auto", "none"] | OpenAINamedFunction | None = None  # legacy
    reasoning_effort: str | None = None


class OpenAICompletionRequest(OpenAISamplingRequest):
    prompt: str | list[str] = Field(description="One prompt (a list of one string is accepted).")
    echo: bool | None = False
    suffix: str | None = None
    best_of: int | None = None


class OpenAIImageGenerationRequest(Loose):
    prompt: str = Field(min_length=1, max_length=32_000)
    model: str | None = Field(default=None, max_length=300, examples=["openai:dall-e-3"])
    n: int | None = 1
    size: str | None = Field(default=None, examples=["1024x1024"], description="WxH or auto")
    response_format: Literal["url", "b64_json"] | None = None
    stream: bool | None = False
    quality: str | None = None
    style: str | None = None
    user: str | None = None


# responses
class OpenAIUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def _none(value: object) -> bool:
    return value is None


class OpenAIToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: OpenAIFunctionCall


class OpenAIAssistantMessage(BaseModel):
    """``content`` is null when the answer is only tool calls, as OpenAI's is;
    ``reasoning_content`` is the model's visible reasoning under DeepSeek's name (the
    OpenAI SDK keeps it as an extra field). ``function_call`` answers a request made
    with the legacy ``functions``."""

    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None
    # Absent rather than null when there are none, as in OpenAI's (and DeepSeek's) answers.
    tool_calls: list[OpenAIToolCall] | None = Field(default=None, exclude_if=_none)
    function_call: OpenAIFunctionCall | None = Field(default=None, exclude_if=_none)
    reasoning_content: str | None = Field(default=None, exclude_if=_none)


class OpenAIChatChoice(BaseModel):
    index: int = 0
    message: OpenAIAssistantMessage
    logprobs: None = None
    finish_reason: str


class OpenAIChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[OpenAIChatChoice]
    usage: OpenAIUsage | None
    system_fingerprint: str | None = None


class OpenAICompletionChoice(BaseModel):
    text: str
    index: int = 0
    logprobs: None = None
    finish_reason: str


class OpenAITextCompletion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[OpenAICompletionChoice]
    usage: OpenAIUsage | None


class OpenAIImageData(BaseModel):
    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None


class OpenAIImagesResponse(BaseModel):
    created: int
    data: list[OpenAIImageData]


class OpenAIModelObject(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class OpenAIModelPage(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIModelObject]


class OpenAIErrorObject(BaseModel):
    message: str
    type: str = Field(examples=["invalid_request_error"])
    param: str | None = None
    code: str | None = Field(default=None, examples=["model_not_found"])


class OpenAIErrorResponse(BaseModel):
    """Every error under /openai/v1, in OpenAI's shape; ``code`` is the gateway's code
    of API.md §2."""

    error: OpenAIErrorObject
