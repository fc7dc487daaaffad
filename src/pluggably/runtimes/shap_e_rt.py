"""Text-to-3D through diffusers' ShapEPipeline (a pipeline folder such as openai/shap-e).
The pipeline runs the prior to a latent, the renderer turns the latent into a mesh by
marching cubes over a ``grid_size``³ grid, trimesh writes the file, and PIL draws a
preview. ShapEPipeline takes no step callback, so cancellation is a forward pre-hook
on the prior (once per step) and on the renderer's MLP (once per batch of grid points)."""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import trimesh
from diffusers import ShapEPipeline
from PIL import Image, ImageDraw

from pluggably.errors import FeatureNotSupported, InvalidParameter, UpstreamError
from pluggably.runtimes.base import LocalCall, LocalResult, ModelSpec, RuntimeFactory
from pluggably.runtimes.diffusers_rt import (
    Cancelled,
    PipelineRuntime,
    png,
    seeded,
)

FORMATS = ("glb", "obj", "ply")
# What a runtime made without arguments (as the factory makes them) uses. GRID_SIZE None:
# by device (below). Tests set small values here to keep tiny models fast.
GRID_SIZE: int | None = None
PREVIEW_SIZE = 256


class EmptyMesh(Exception):
    """The model's signed distance field has no surface inside the grid."""


class ShapERuntime(PipelineRuntime):
    kind = "shap_e"
    library = "diffusers (Shap-E)"
    pipeline_class = ShapEPipeline
    makes = "meshes"

    def __init__(
        self, spec: ModelSpec, *, grid_size: int | None = None, preview_size: int | None = None
    ) -> None:
        """``grid_size``: marching-cubes resolution. Shap-E's own 128 costs 8x the grid
        points of 64, about half a minute of CPU; so 128 on a GPU, 64 on a CPU."""
        super().__init__(spec)
        default_grid = 128 if torch.cuda.is_available() else 64
        self.grid_size = grid_size or GRID_SIZE or default_grid
        self.preview_size = preview_size or PREVIEW_SIZE

    def generate(self, call: LocalCall, cancel: threading.Event) -> LocalResult:
        message = self._prompt(call)
        if message.images:
            raise FeatureNotSupported(f"Model '{self.spec.model_id}' starts from text only.")
        params = call.parameters
        fmt = str(params.get("output_format") or "glb").lower()
        if fmt not in FORMATS:
            raise InvalidParameter(f"output_format must be one of {', '.join(FORMATS)}.")
        if cancel.is_set():
            return LocalResult(finish_reason="cancelled")
        try:
            mesh = self._mesh(message.text, params, cancel)
        except Cancelled:
            return LocalResult(finish_reason="cancelled")
        except EmptyMesh:
            raise UpstreamError(
                f"Model '{self.spec.model_id}' made no surface for this prompt; "
                "try another prompt or seed."
            ) from None
        try:
            return LocalResult(
                mesh=export(mesh, fmt),
                mesh_format=fmt,
                preview=png(render_preview(mesh, self.preview_size)),
            )
        finally:
            release(mesh)

    def _mesh(
        self, prompt: str, params: dict[str, Any], cancel: threading.Event
    ) -> trimesh.Trimesh:
        pipe = self._pipe
        renderer = pipe.shap_e_renderer

        def check_cancel(module: Any, args: Any) -> None:
            if cancel.is_set():
                raise Cancelled

        def check_surface(module: Any, args: Any, output: Any) -> None:
            if output.faces.shape[0] == 0:
                raise EmptyMesh

        hooks = [
            pipe.prior.register_forward_pre_hook(check_cancel),
            renderer.mlp.register_forward_pre_hook(check_cancel),
            renderer.mesh_decoder.register_forward_hook(check_surface),
        ]
        options = {
            "num_inference_steps": params.get("num_inference_steps"),
            "guidance_scale": params.get("guidance_scale"),
            "generator": seeded(params.get("seed"), pipe.device),
        }
        try:
            with torch.inference_mode():
                # The pipeline's own "mesh" output decodes on a fixed 128³ grid; decode the
                # latent here instead, at this runtime's grid size.
                latents = pipe(
                    prompt,
                    output_type="latent",
                    **{k: v for k, v in options.items() if v is not None},
                ).images
                raw = renderer.decode_to_mesh(latents[:1], pipe.device, grid_size=self.grid_size)
        finally:
            for hook in hooks:
                hook.remove()
        return to_trimesh(raw)


def to_trimesh(raw: Any) -> trimesh.Trimesh:
    colors = np.stack([raw.vertex_channels[c].float().cpu().numpy() for c in "RGB"], axis=1)
    # Shap-E's meshes are z-up; glTF and most viewers are y-up.
    vertices = raw.verts.float().cpu().numpy() @ _rotation(0, -90).T
    return trimesh.Trimesh(
        vertices=vertices,
        faces=raw.faces.cpu().numpy(),
        vertex_colors=(np.clip(colors, 0.0, 1.0) * 255).round().astype(np.uint8),
        process=False,
    )


def _rotation(axis: int, degrees: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The 3x3 matrix turning points ``degrees`` about axis 0 (x) or 1 (y)."""
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    if axis == 0:
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def release(mesh: trimesh.Trimesh) -> None:
    """Free the mesh's arrays now. A Trimesh references itself (its ray, permutate and
    nearest helpers, its caches' id functions), so dropping the last name frees nothing
    until the cycle collector runs, which the app tunes to run rarely: up to 19 MB of arrays
    per 64³ mesh were left behind each generation. What stays is a small shell."""
    visual: Any = mesh.visual  # ColorVisuals: the mesh was made with vertex colours
    for holder in (mesh, visual):
        holder._cache.clear()
        holder._data.clear()


def export(mesh: trimesh.Trimesh, fmt: str) -> bytes:
    data = mesh.export(file_type=fmt)
    return data.encode() if isinstance(data, str) else bytes(data)


def render_preview(mesh: trimesh.Trimesh, size: int) -> Image.Image:
    """An orthographic three-quarter view: faces turned to the viewer, far ones first,
    each in its vertices' mean colour, lit from the viewer."""
    rotation = _rotation(0, 25) @ _rotation(1, -35)
    verts = np.asarray(mesh.vertices, dtype=np.float64) @ rotation.T
    triangles = verts[np.asarray(mesh.faces)]
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    lengths = np.maximum(np.linalg.norm(normals, axis=1), 1e-12)
    facing = normals[:, 2] / lengths
    keep = facing > 0
    shade = 0.3 + 0.7 * facing[keep]
    visual: Any = mesh.visual  # ColorVisuals: the mesh was made with vertex colours
    rgb = np.asarray(visual.vertex_colors)[np.asarray(mesh.faces)[keep], :3].mean(axis=1)
    fills = (rgb * shade[:, None]).round().astype(np.uint8)
    triangles = triangles[keep]
    low, high = verts[:, :2].min(axis=0), verts[:, :2].max(axis=0)
    scale = 0.9 * size / max(float((high - low).max()), 1e-9)
    centre = (low + high) / 2
    xy = (triangles[:, :, :2] - centre) * scale * np.array([1.0, -1.0]) + size / 2
    image = Image.new("RGB", (size, size), (240, 240, 240))
    draw = ImageDraw.Draw(image)
    for index in np.argsort(triangles[:, :, 2].mean(axis=1)):
        draw.polygon([tuple(p) for p in xy[index].tolist()], fill=tuple(fills[index].tolist()))
    return image


if TYPE_CHECKING:  # mypy checks the class against the runtime protocol
    _conforms: RuntimeFactory = ShapERuntime
