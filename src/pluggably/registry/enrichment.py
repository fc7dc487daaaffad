"""Documentation for registered models, from their Hugging Face model card: a
summary, a usage snippet, recommended parameters, license and tags. Runs in the
background after registration; a failure is recorded on the doc row and never
undoes or blocks the registration."""

from __future__ import annotations

import re
from typing import Any

import httpx
from huggingface_hub import ModelCard

from pluggably.db import Database
from pluggably.observability.logging import get_logger
from pluggably.registry.hub import HubClient
from pluggably.registry.repository import RegistryRepository

log = get_logger("pluggably.enrichment")
_FENCE = re.compile(r"```[\w+-]*\n(.*?)```", re.DOTALL)
_USAGE_HEADING = re.compile(r"^#+\s*(usage|how to use|quick ?start|getting started)", re.I | re.M)
MAX_CARD_BYTES = 512 * 1024


def parse_card(text: str) -> dict[str, Any]:
    card = ModelCard(text, ignore_metadata_errors=True)
    data: dict[str, Any] = card.data.to_dict() if card.data else {}  # type: ignore[no-untyped-call]
    body = card.text or ""
    summary = next(
        (
            " ".join(p.split())
            for p in re.split(r"\n\s*\n", body)
            if p.strip() and not p.lstrip().startswith(("#", "<", "!", "[!", "|", "```", "-", "*"))
        ),
        None,
    )
    heading = _USAGE_HEADING.search(body)
    fence = _FENCE.search(body, heading.end() if heading else 0) or _FENCE.search(body)
    inference = data.get("inference")
    parameters = inference.get("parameters") if isinstance(inference, dict) else None
    license_ = data.get("license")
    return {
        "summary": summary[:2000] if summary else None,
        "usage": fence.group(1).strip()[:4000] if fence else None,
        "parameters": parameters if isinstance(parameters, dict) else {},
        "license": str(license_)[:100] if license_ else None,
        "card_tags": [str(t) for t in data.get("tags") or []][:50],
    }


async def enrich(
    db: Database,
    hub: HubClient,
    client: httpx.AsyncClient,
    model_id: str,
    repo: str,
    revision: str | None,
    tags: list[str],
) -> None:
    url = hub.file_url(repo, "README.md", revision or "main")
    fields: dict[str, Any]
    try:
        response = await client.get(url, headers=hub.headers(), follow_redirects=True)
        if response.status_code == 404:
            fields = {"summary": None, "usage": None, "parameters": {}, "license": None}
            card_tags: list[str] = []
        else:
            response.raise_for_status()
            parsed = parse_card(response.content[:MAX_CARD_BYTES].decode("utf-8", "replace"))
            card_tags = parsed.pop("card_tags")
            fields = parsed
        status, error = "ok", None
    except (httpx.HTTPError, ValueError) as exc:
        fields, card_tags = {}, []
        status, error = "failed", f"Could not read the model card: {type(exc).__name__}"
    async with db.session() as session:
        doc = await RegistryRepository(session).doc(model_id)
        if doc is None:  # the model was deleted meanwhile
            return
        for key, value in fields.items():
            setattr(doc, key, value)
        doc.tags = sorted(set(tags) | set(card_tags))
        doc.source_url = f"{hub.endpoint}/{repo}"
        doc.status, doc.error = status, error
    log.info("model_enriched", model_id=model_id, status=status)
