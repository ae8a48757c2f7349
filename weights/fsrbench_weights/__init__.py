"""fsrbench's shipped reference weights: ``ENTRY.safetensors`` (float16) + ``ENTRY.card.json`` per model.

``ROOT`` is the folder fsrbench searches (entry point ``fsrbench.weights``: ``reference``). The cards say
what each model is: fsrbench's CPU reference weights, trained on faces-train with the stated budget; not
the papers' weights and not comparable with the papers' numbers. ``recipes.yaml`` holds how each entry was
trained; ``fsrbench weights reproduce ENTRY`` replays it.
"""
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent)
