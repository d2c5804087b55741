"""The model card of an exported model: its evidence as a short Markdown page."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_DIGITS = 4  # significant digits shown; the evidence file keeps full precision


def _number(value: Any) -> str:
    return "-" if value is None else f"{value:.{_DIGITS}g}"


def _interval(data: Mapping[str, Any] | None) -> str:
    """`estimate [low, high] (90% CI, n pairs)`, or why there is no interval."""
    if not data or data.get("estimate") is None:
        return "not measured (no per-pair data or no ReLU reference)"
    text = _number(data["estimate"])
    level, n = data.get("level"), data.get("n")
    if data.get("low") is None or data.get("high") is None:
        return f"{text} (no interval, {n} pairs)"
    return f"{text} [{_number(data['low'])}, {_number(data['high'])}] ({level:.0%} CI, {n} pairs)"


def _layer_text(config: Mapping[str, Any]) -> str:
    """`SmeLU(beta=0.4, learnable=False)`: the layer's scalar settings, names aside."""
    inner = config.get("config") or {}
    skipped = {"name", "trainable", "dtype"}
    shown = ", ".join(
        f"{key}={value:.{_DIGITS}g}" if isinstance(value, float) else f"{key}={value!r}"
        for key, value in inner.items()
        if key not in skipped and isinstance(value, (bool, int, float, str))
    )
    return f"{config.get('class_name')}({shown})"


def model_card(evidence: Mapping[str, Any]) -> str:
    """A Markdown model card of an exported model's evidence (`_export.build_evidence`).

    Args:
        evidence: The evidence dict.

    Returns:
        The card's text: what the model is, the activation, its accuracy and PD against ReLU
        with their intervals, the decision, how it was trained, and the experiment.
    """
    activation = evidence["activation"]
    accuracy_name, pd_name = evidence["objective_names"]
    measured = evidence["measured"]
    reference = evidence.get("reference") or {}
    comparison = evidence.get("comparison") or {}
    decision = evidence.get("decision") or {}
    study = evidence.get("study") or {}
    training = evidence.get("training") or {}
    files = evidence.get("files") or {}
    chosen = "the recommended point" if evidence.get("recommended") else "a chosen trial"
    lines = [
        f"# {evidence['model']}: {activation['label']}",
        "",
        f"Trial {evidence['trial']} of study `{study.get('name')}`, {chosen}. "
        f"Load with `import keras_smelu; keras.saving.load_model({files.get('model')!r})`.",
        "",
        "## Activation",
        "",
        f"- family: `{activation['family']}`, width: {_number(activation['width'])} "
        "(SmeLU `beta` units)",
        f"- Keras layer: `{_layer_text(activation['config'])}` (full config in the evidence)",
        "",
        "## Evidence (evaluation data, mean over the study's replica pairs)",
        "",
        f"| | {accuracy_name} | {pd_name} |",
        "|---|---|---|",
        f"| this model's point | {_number(measured['accuracy'])} | {_number(measured['pd'])} |",
        f"| ReLU reference | {_number(reference.get('accuracy'))} | "
        f"{_number(reference.get('pd'))} |",
        "",
        f"- PD x ReLU: {_interval(comparison.get('pd_ratio'))}",
        f"- {accuracy_name} cost vs ReLU: {_interval(comparison.get('accuracy_cost'))}",
        f"- Decision: {decision.get('summary', 'none (no per-pair data)')}",
        "",
    ]
    if files.get("plot"):
        lines += [f"![accuracy/PD plane of the study]({files['plot']})", ""]
    reproduction = evidence.get("reproduction") or {}
    gap = reproduction.get("max_relative_difference")
    lines += [
        "## Training",
        "",
        f"Replica {training.get('replica')} of pair {training.get('pair')} of the study, "
        f"retrained with its seeds {training.get('seeds')} for {training.get('epochs')} "
        "epoch(s).",
        f"Its evaluation metrics {reproduction.get('measured')} "
        + (
            "(the study recorded none to compare with)."
            if gap is None
            else f"differ from the study's record of that replica by at most {gap:.3g} (relative)."
        ),
        "",
        "## Experiment",
        "",
    ]
    fingerprint = evidence.get("fingerprint") or {}
    lines += [f"- `{key}`: {value}" for key, value in sorted(fingerprint.items())]
    lines += [f"- note: {note}" for note in evidence.get("notes", ())]
    lines += [
        "",
        f"Evidence file: `{files.get('model')}.evidence.json` (full precision).",
        "",
    ]
    return "\n".join(lines)
