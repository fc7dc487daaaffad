"""instructor against the gateway's OpenAI surface, run by test_instructor.py with the
interpreter of instructor's own venv (tests/fixtures/framework_venv.py), not collected by
pytest. Arguments: the surface's base URL, an API key and an instructor Mode name; prints
the validated response model as JSON."""

from __future__ import annotations

import sys
from typing import Literal

import instructor
from openai import OpenAI
from pydantic import BaseModel


class Forecast(BaseModel):
    city: str
    degrees: int
    sky: Literal["clear", "cloudy"]


def main() -> None:
    base_url, api_key, mode = sys.argv[1:4]
    api = OpenAI(base_url=base_url, api_key=api_key, max_retries=0)
    client = instructor.from_openai(api, mode=instructor.Mode[mode])
    forecast = client.chat.completions.create(
        model="openai:gpt-4o-mini",
        response_model=Forecast,
        messages=[{"role": "user", "content": "The forecast for Paris?"}],
    )
    assert isinstance(forecast, Forecast)
    print(forecast.model_dump_json())


if __name__ == "__main__":
    main()
