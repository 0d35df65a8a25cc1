"""What TensorRT would make of a model without building it: the ONNX parser's refusals, and the
builder configuration (targets, workspace, optimization profiles) checked against the network."""

from __future__ import annotations

from dataclasses import dataclass, field

from trtc.backend.builder import BuildSettings, ModelSource, ParserProblem, configure, network_flags, parse_problems
from trtc.backend.lifetime import TensorRTScope
from trtc.backend.plugins import load_plugins
from trtc.backend.trt_import import TensorRT
from trtc.backend.trt_logger import capturing_logger, last_error


@dataclass
class SupportCheck:
    problems: list[ParserProblem]  # empty when the parser took every node
    layers: int  # network layers the parser created
    inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)  # engine inputs, -1 for dynamic dims
    outputs: list[str] = field(default_factory=list)
    profile_errors: list[str] = field(default_factory=list)


def check_support(trt: TensorRT, source: ModelSource, settings: BuildSettings) -> SupportCheck:
    """Parse with TensorRT's own parser; when it parses, also apply the build settings to a
    builder config, which refuses bad targets and profiles that do not fit the network."""
    with TensorRTScope() as scope:
        return _check_in_scope(scope, trt, source, settings)


def _check_in_scope(scope: TensorRTScope, trt: TensorRT, source: ModelSource, settings: BuildSettings) -> SupportCheck:
    lib = trt.module
    logger = scope.keep(capturing_logger(lib))
    builder = scope.keep(lib.Builder(logger))
    network = scope.keep(builder.create_network(network_flags(lib)))
    parser = scope.keep(lib.OnnxParser(network, logger))
    load_plugins(trt, settings.plugins, logger.messages)
    problems = parse_problems(trt, parser, source, logger)
    inputs = {network.get_input(i).name: tuple(network.get_input(i).shape) for i in range(network.num_inputs)}
    outputs = [network.get_output(i).name for i in range(network.num_outputs)]
    result = SupportCheck(problems, network.num_layers, inputs, outputs)
    if problems:
        return result
    config = scope.keep(builder.create_builder_config())
    errors_before = len(logger.messages)
    configure(trt, builder, network, config, settings)  # raises SpecError on a target the backend lacks
    if config.num_optimization_profiles != len(settings.profiles):
        result.profile_errors.append(last_error(logger.messages[errors_before:]))
    return result
