"""What a person calls a kernel: the ONNX nodes it covers ("stem.conv +3 more"), not TensorRT's
internal name (`__myl_CastReplConc_myl0_1`), which the reports keep beside the label (a tooltip,
a table column). Names come from the model: every renderer escapes what this returns."""

from __future__ import annotations

from trtc.printable import one_line

ADDED_BY_TRTC = " (added by trtc)"  # the op-type suffix of the casts and Q/DQ trtc inserts


def label_parts(kernel: dict) -> tuple[str | None, str]:
    """(the node the label names, what follows it): the first of the model's own nodes the kernel
    covers (trtc's casts and Q/DQ only when it covers nothing else) and ' +N more'; (None,
    'no ONNX node (type)') for a kernel that covers none (data movement TensorRT added)."""
    nodes = kernel["onnx_nodes"]
    if not nodes:
        return None, f"no ONNX node ({kernel['type']})"
    own = [node for node, op in zip(nodes, kernel["onnx_op_types"]) if not op.endswith(ADDED_BY_TRTC)]
    more = len(nodes) - 1
    return (own or nodes)[0], f" +{more} more" if more else ""


def kernel_label(kernel: dict, limit: int | None = None) -> str:
    """The label as plain text; with `limit`, the node's name is shortened so that the label fits
    and ' +N more' stays readable."""
    node, rest = label_parts(kernel)
    if node is None:
        return rest
    name = one_line(node)
    if limit is not None and len(name) + len(rest) > limit:
        name = name[: max(limit - len(rest) - 1, 8)] + "…"
    return name + rest
