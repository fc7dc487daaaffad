"""Tools in prompts: a Qwen-style chat template renders the offered tools, an assistant
turn's calls and the tool results; a model without a template gets them in its
transcript; discovery tells templates that take tools from those that do not."""

from __future__ import annotations

import json

import pytest

from pluggably.messages import Message, Tool, ToolCall
from pluggably.runtimes.prompts import (
    takes_tools,
    template_prompt,
    template_turns,
    tool_instruction,
    transcript,
    with_system,
)

Jinja2ChatFormatter = pytest.importorskip("llama_cpp.llama_chat_format").Jinja2ChatFormatter
# Qwen 2.5's template, shortened: tools in the system turn, calls as <tool_call> JSON,
# results as <tool_response> in a user turn.
QWEN = """\
{%- if tools %}<|im_start|>system
{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}{% else %}You are Qwen.
{% endif %}
# Tools
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools>
For each function call, return a json object within <tool_call></tool_call> XML tags.<|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == 'system' and tools %}
{%- elif message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant
{{ message.content }}
{%- for tool_call in message.tool_calls %}
{%- set tool_call = tool_call.function %}
<tool_call>
{"name": "{{ tool_call.name }}", "arguments": {{ tool_call.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% elif message.role == 'tool' %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""
GEMMA = (
    "{% for message in messages %}<start_of_turn>{{ message.role }}\n"
    "{{ message.content }}<end_of_turn>\n{% endfor %}<start_of_turn>model\n"
)
WEATHER = Tool("get_weather", "The weather in a city", {"type": "object", "properties": {}})
CALL = ToolCall("call_1", "get_weather", '{"city": "Paris"}')
CONVERSATION = [
    Message("user", "Weather in Paris?"),
    Message("assistant", "", tool_calls=(CALL,)),
    Message("tool", '{"temperature": 21}', tool_call_id="call_1"),
]
OPENAI_WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {}},
    },
}


def render(messages: list[Message], template: str = QWEN) -> str:
    formatter = Jinja2ChatFormatter(template=template, eos_token="<|im_end|>", bos_token="")

    def through(turns: list[dict[str, object]]) -> str:
        return str(formatter(messages=turns, tools=[OPENAI_WEATHER]).prompt)

    return template_prompt(through, messages)


def test_a_qwen_template_renders_the_offered_tools() -> None:
    prompt = render([Message("user", "Weather in Paris?")])
    assert f"<tools>{json.dumps(OPENAI_WEATHER)}</tools>" in prompt
    assert prompt.endswith("<|im_start|>user\nWeather in Paris?<|im_end|>\n<|im_start|>assistant\n")


def test_a_qwen_template_renders_a_call_and_its_result() -> None:
    prompt = render(CONVERSATION)
    assert (
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": '
        '{"city": "Paris"}}\n</tool_call><|im_end|>\n'
        '<|im_start|>user\n<tool_response>\n{"temperature": 21}\n</tool_response><|im_end|>\n'
        "<|im_start|>assistant\n"
    ) in prompt


def test_template_turns_carry_calls_as_objects_and_results_with_their_call() -> None:
    assert template_turns(CONVERSATION) == [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}},
                }
            ],
        },
        {
            "role": "tool",
            "content": '{"temperature": 21}',
            "tool_call_id": "call_1",
            "name": "get_weather",
        },
    ]


def test_a_transcript_shows_calls_and_results_as_turns() -> None:
    assert transcript(CONVERSATION) == (
        "User: Weather in Paris?\n"
        'Assistant: {"name": "get_weather", "arguments": {"city": "Paris"}}\n'
        'Tool: {"temperature": 21}\n'
        "Assistant:"
    )


def test_the_instruction_for_a_named_call_describes_that_tool_only() -> None:
    other = Tool("get_time", None, {"type": "object"})
    assert tool_instruction((WEATHER, other), "get_time") == (
        "Call the tool 'get_time': answer with its arguments as a JSON object.\n"
        '- get_time. Arguments (JSON Schema): {"type": "object"}'
    )


def test_the_instruction_for_a_required_call_lists_every_tool() -> None:
    other = Tool("get_time", None, {"type": "object"})
    lines = tool_instruction((WEATHER, other), None).splitlines()
    assert lines[0] == 'Call one of these tools: answer with {"name": <tool>, "arguments": {...}}.'
    assert lines[1:] == [
        '- get_weather: The weather in a city. Arguments (JSON Schema): {"type": "object", '
        '"properties": {}}',
        '- get_time. Arguments (JSON Schema): {"type": "object"}',
    ]


def test_a_template_that_refers_to_tools_takes_them() -> None:
    assert takes_tools(QWEN)


def test_a_template_that_never_mentions_tools_does_not_take_them() -> None:
    assert not takes_tools(GEMMA)


def test_an_instruction_joins_the_callers_system_turn() -> None:
    messages = [Message("system", "Be brief."), Message("user", "Hi")]
    assert with_system(messages, "Call a tool.") == [
        Message("system", "Be brief.\n\nCall a tool."),
        Message("user", "Hi"),
    ]


def test_an_instruction_is_the_system_turn_when_there_is_none() -> None:
    assert with_system([Message("user", "Hi")], "Call a tool.") == [
        Message("system", "Call a tool."),
        Message("user", "Hi"),
    ]
