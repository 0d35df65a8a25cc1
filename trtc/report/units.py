"""Numbers for people: the JSON report keeps exact integers; Markdown and the console show these."""

from __future__ import annotations

from collections import Counter


def human(value: float | None, unit: str) -> str:
    """1234567 -> '1.23 M<unit>'; a formula in dynamic dimensions (from `trtc inspect` without
    --shape) term by term: '1.23 MFLOP·N'."""
    if value is None:
        return "?"
    terms = getattr(value, "terms", None)
    if terms is not None:
        return (
            " + ".join(human(c, unit) + "".join(f"·{name}" for name in m) for m, c in terms) if terms else f"0 {unit}"
        )
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def saved_or_added(amount: float, unit: str) -> str:
    """'saved 1.20 MB', or 'added 1.20 MB' when a step added work (never 'saved -1.20 MB')."""
    return f"saved {human(amount, unit)}" if amount >= 0 else f"added {human(-amount, unit)}"


def fusion_effect(saved_percent: float) -> str:
    """What fusion did to memory traffic. It can add traffic: TensorRT runs some nodes as several
    kernels (an LSTM unrolled into one kernel per time step)."""
    if saved_percent >= 0:
        return f"{saved_percent:.1f}% saved by fusion"
    return (
        f"{-saved_percent:.1f}% more after fusion: TensorRT runs some nodes as several kernels, "
        "e.g. a recurrence unrolled per time step"
    )


def savings(flops: float, mac_bytes: float) -> str:
    """'saved 2.62 MFLOP and 9.05 MB of memory traffic', with 'added' for whichever grew."""
    if flops >= 0 and mac_bytes >= 0:
        return f"saved {human(flops, 'FLOP')} and {human(mac_bytes, 'B')} of memory traffic"
    return f"{saved_or_added(flops, 'FLOP')} and {saved_or_added(mac_bytes, 'B')} of memory traffic"


def per_profile_note(counts: dict) -> str:
    """'' for one profile; else how the kernel sets repeat per profile, for every renderer."""
    per_profile = counts.get("kernels_per_profile") or {}
    if len(per_profile) < 2:
        return ""
    each = ", ".join(f"profile {p}: {n}" for p, n in per_profile.items())
    return f"; one kernel set per optimization profile ({each}), profile 0's shown"


# Why a node that computes on the inputs can be in no kernel's metadata (fusion["unnamed_nodes"]).
UNNAMED_WHY = (
    "they compute on the inputs, so TensorRT cannot have evaluated them while building: a kernel "
    "runs them without naming them in its metadata, or they are views TensorRT elided; their FLOPs "
    "count after fusion, in no kernel"
)

# Why a node was pruned before the passes, by the step that pruned it (fusion["pruned_nodes"]).
PRUNED_BY = {"outputs": "outputs: feeds none of them", "pinning": "pinning: folded once inputs were pinned"}


def without_kernel(fusion: dict) -> str:
    """Where the model's nodes that no kernel runs went, e.g. "1 node pruned before the passes
    (outputs 1); 1 node removed by trtc's passes (remove-noops 1); 2 nodes evaluated by TensorRT
    at build time (2 Shape); 1 node run but named by no kernel (1 Flatten)"; '' for none."""
    by_pass = Counter(node["pass"] for node in fusion["removed_nodes"])
    by_step = Counter(node["by"] for node in fusion.get("pruned_nodes", []))
    by_op = list(fusion["folded_by_op_type"].items())
    parts = []
    if by_step:
        parts.append(
            f"{_nodes(sum(by_step.values()))} pruned before the passes ({', '.join(f'{p} {n}' for p, n in by_step.items())})"
        )
    if by_pass:
        parts.append(
            f"{_nodes(sum(by_pass.values()))} removed by trtc's passes ({', '.join(f'{p} {n}' for p, n in by_pass.items())})"
        )
    if by_op:
        parts.append(f"{_nodes(sum(n for _, n in by_op))} evaluated by TensorRT at build time ({_by_op(by_op)})")
    unnamed = list(fusion.get("unnamed_by_op_type", {}).items())
    if unnamed:
        parts.append(f"{_nodes(sum(n for _, n in unnamed))} run but named by no kernel ({_by_op(unnamed)})")
    return "; ".join(parts)


def _by_op(by_op: list[tuple[str, int]]) -> str:
    return ", ".join(f"{n} {op}" for op, n in by_op[:4]) + (", ..." if len(by_op) > 4 else "")


def _nodes(count: int) -> str:
    return f"{count} node" if count == 1 else f"{count} nodes"


OUTPUT_PHASES = ("report", "write")  # after the Markdown and HTML reports are rendered


def build_time(build: dict, with_outputs: bool = True) -> str:
    """'61.59 s (TensorRT 10.42 s, precision 49.46 s, calibration 30.10 s of it)': the total of
    the build's main-thread phases (`with_outputs=False`: those before rendering and writing the
    outputs, so a report renders the same whenever it is rendered), TensorRT's part and any other
    phase of a second or more, with its named parts. A report without phases gives TensorRT's
    time, named as such."""
    phases = build.get("phases") or {}
    main, parts = dict(phases.get("main") or {}), phases.get("parts") or {}
    if not with_outputs:
        main = {name: seconds for name, seconds in main.items() if name not in OUTPUT_PHASES}
    tensorrt = main.pop("tensorrt", build["build_seconds"])
    if not main:
        return f"{tensorrt:.2f} s of TensorRT build"
    total = tensorrt + sum(main.values())
    others = [
        ", ".join([f"{name} {seconds:.2f} s", *(f"{part} {s:.2f} s of it" for part, s in parts.get(name, {}).items())])
        for name, seconds in main.items()
        if seconds >= 1.0
    ]
    return f"{total:.2f} s ({', '.join([f'TensorRT {tensorrt:.2f} s', *others])})"
