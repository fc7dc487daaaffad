"""A generation's files as the response carries them: images and meshes inline (base64)
while they fit the inline threshold together, otherwise as signed artifact links; a
mesh's preview is always a link."""

from __future__ import annotations

import base64

from pluggably.artifacts.service import ArtifactService
from pluggably.db import Database
from pluggably.generation.schemas import Artifact, Output
from pluggably.providers.base import Completion
from pluggably.tool_call_schema import FunctionCall, ToolCallSpec

MESH_TYPES = {
    "glb": "model/gltf-binary",
    "obj": "model/obj",
    "ply": "model/ply",
}


def text_output(completion: Completion) -> Output:
    """The answer's text, tool calls and reasoning, or its embeddings (inline always:
    vectors are the answer itself, never a file to fetch)."""
    return Output(
        embeddings=completion.embeddings or None,
        text=completion.text,
        tool_calls=[
            ToolCallSpec(id=c.id, function=FunctionCall(name=c.name, arguments=c.arguments))
            for c in completion.tool_calls
        ],
        reasoning=completion.reasoning,
        reasoning_signature=completion.reasoning_signature,
    )


def _b64_size(value: str) -> int:
    return len(value) * 3 // 4


async def build_output(
    completion: Completion,
    *,
    owner_id: str,
    request_id: str,
    db: Database,
    artifacts: ArtifactService | None,
    inline_bytes: int,
    keep: bool = False,
) -> Output:
    """``keep``: store every file as an artifact too (a session turn refers to them),
    still inline in the response while they fit."""
    output = text_output(completion)
    output.images, output.mesh = list(completion.images), completion.mesh
    size = sum(_b64_size(i) for i in completion.images) + (
        _b64_size(completion.mesh) if completion.mesh else 0
    )
    to_store: list[tuple[bytes, str, str]] = []
    if artifacts is not None and (size > inline_bytes or keep):
        to_store += [(base64.b64decode(i), "image", "image/png") for i in output.images]
        if completion.mesh:
            content_type = MESH_TYPES.get(completion.mesh_format or "", "application/octet-stream")
            to_store.append((base64.b64decode(completion.mesh), "mesh", content_type))
        if size > inline_bytes:
            output.images, output.mesh = [], None
    if artifacts is not None and completion.preview is not None:
        to_store.append((completion.preview, "preview", "image/png"))
    if to_store:
        assert artifacts is not None
        async with db.session() as session:
            for data, kind, content_type in to_store:
                info = await artifacts.save(
                    session,
                    owner_id=owner_id,
                    data=data,
                    type=kind,  # type: ignore[arg-type]
                    content_type=content_type,
                    request_id=request_id,
                )
                output.artifacts.append(Artifact.model_validate(info.model_dump()))
    return output
