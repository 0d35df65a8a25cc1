"""Parse an ONNX model with TensorRT's parser and build a serialized plan.

Uses only the API that `tensorrt` and `tensorrt_rtx` share; options that one of them lacks
(compute capabilities) are feature-detected and refused with a clear message.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from trtc import interrupts
from trtc.backend.engine_info import EngineInfo
from trtc.backend.inspector import inspect_plan
from trtc.backend.layer_log import parse_builder_log
from trtc.backend.lifetime import TensorRTScope
from trtc.backend.plugins import LoadedPlugin, load_plugins, plugin_hint
from trtc.backend.trt_import import TensorRT
from trtc.backend.trt_logger import capturing_logger, clean, last_error
from trtc.errors import BuildError, GpuUnavailableError, SpecError, UnsupportedModelError
from trtc.spec.model import ShapeRange, Spec

if TYPE_CHECKING:
    from trtc.graph.weights import SplitModel


class BuildObserver(Protocol):
    """Receives TensorRT's own build phases (its progress monitor)."""

    def phase_start(self, name: str, parent: str | None, steps: int) -> None: ...
    def phase_step(self, name: str, step: int) -> None: ...
    def phase_finish(self, name: str) -> None: ...


@dataclass(frozen=True)
class BuildSettings:
    profiles: list[dict[str, ShapeRange]]
    workspace: int | None = None
    compute_capabilities: tuple[str, ...] = ()
    optimization_level: int | None = None
    timing_cache: bytes | None = None
    plugins: tuple[Path, ...] = ()  # libraries loaded into TensorRT's plugin registry before parsing

    @staticmethod
    def for_spec(spec: Spec, profiles: list[dict[str, ShapeRange]], timing_cache: bytes | None = None) -> BuildSettings:
        return BuildSettings(
            profiles=profiles,
            workspace=spec.workspace,
            compute_capabilities=spec.target.compute_capabilities,
            optimization_level=spec.target.optimization_level,
            timing_cache=timing_cache,
            plugins=spec.plugins,
        )


@dataclass
class BuildResult:
    plan: bytes | memoryview
    engine: EngineInfo | None
    log: list[tuple[str, str]]  # (severity, message)
    seconds: float
    timing_cache: bytes | None = None
    warnings: list[str] = field(default_factory=list)
    plugins: list[LoadedPlugin] = field(default_factory=list)


@dataclass(frozen=True)
class ModelSource:
    """The model as TensorRT's parser takes it: bytes, a file, or its structure and its weights
    (which TensorRT then uses where they are; they must outlive the build)."""

    data: bytes | memoryview | None = None
    path: Path | None = None
    # Folder that relative external-data locations resolve against.
    base_dir: Path | None = None
    split: SplitModel | None = None
    release: bool = False  # the build lets go of `data` (a memoryview) once parsed: TensorRT then owns the weights


@interrupts.deferring  # TensorRT calls Python back (logger, monitor): a signal must not raise there
def build_plan(
    trt: TensorRT,
    source: ModelSource,
    settings: BuildSettings,
    observer: BuildObserver | None = None,
    after_parse: Callable[[], None] | None = None,
) -> BuildResult:
    """`after_parse`: called once TensorRT's parser has read the model, before the build."""
    with TensorRTScope() as scope:
        return _build_in_scope(scope, trt, source, settings, observer, after_parse)


def _build_in_scope(
    scope: TensorRTScope,
    trt: TensorRT,
    source: ModelSource,
    settings: BuildSettings,
    observer: BuildObserver | None,
    after_parse: Callable[[], None] | None,
) -> BuildResult:
    lib = trt.module
    logger = scope.keep(capturing_logger(lib))
    started = time.perf_counter()
    builder = scope.keep(lib.Builder(logger))
    network = scope.keep(builder.create_network(network_flags(lib)))
    parser = scope.keep(lib.OnnxParser(network, logger))
    plugins = load_plugins(trt, settings.plugins, logger.messages)
    try:
        _parse(trt, parser, source, logger)
    except BuildError as error:
        error.log = logger.messages
        raise
    finally:
        if source.release and isinstance(source.data, memoryview):
            source.data.release()  # the parser holds the weights now: one copy, not two, through the build
    if after_parse is not None:
        after_parse()
    monitor = None
    if hasattr(lib, "IProgressMonitor"):  # also without an observer: it cancels the build on an interrupt
        monitor = scope.keep(_make_progress_monitor(lib, observer))  # outlives the config that calls it
    config = scope.keep(builder.create_builder_config())
    warnings = []
    if settings.timing_cache is not None and trt.is_rtx:
        warnings.append(
            f"target.timing_cache: {trt.name} has no timing cache (its cache operations are no-ops); ignored"
        )
        settings = replace(settings, timing_cache=None)
    configure(trt, builder, network, config, settings)
    if monitor is not None and hasattr(config, "progress_monitor"):
        config.progress_monitor = monitor
    serialized = builder.build_serialized_network(network, config)
    if monitor is not None and monitor.interrupt is not None:
        raise monitor.interrupt
    interrupts.check()  # the monitor cancelled the build (serialized is None), or the signal came after its last step
    if serialized is None:
        error = BuildError(
            f"TensorRT ({trt.name} {trt.version}) failed to build the engine: {last_error(logger.messages)}"
        )
        error.log = logger.messages
        raise error
    cache = None
    if settings.timing_cache is not None and config.get_timing_cache() is not None:
        cache = bytes(memoryview(config.get_timing_cache().serialize()))
    plan = memoryview(serialized).cast("B")  # no copy: plans can be hundreds of MB
    seconds = time.perf_counter() - started
    engine = parse_builder_log([msg for _, msg in logger.messages])
    if engine is None:  # full TensorRT may not log the Layers: message; its inspector needs a GPU
        try:
            engine = inspect_plan(trt, plan)
        except GpuUnavailableError as error:
            warnings.append(f"no fusion map: {trt.name} logged no layer information, and {error.message}")
    return BuildResult(
        plan=plan,
        engine=engine,
        log=logger.messages,
        seconds=seconds,
        timing_cache=cache,
        warnings=warnings,
        plugins=plugins,
    )


def network_flags(lib) -> int:
    # Strongly typed: the ONNX graph alone decides precision (the only mode TensorRT 11 and
    # TensorRT-RTX have; opt-in on TensorRT 10).
    flag = getattr(lib.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 1 << int(flag) if flag is not None else 0


_CUDA_NOISE = re.compile(r"\s*\[checkMacros\.cpp::catchCudaError::\d+\] Error Code 1: Cuda Runtime \(.*\)$")


@dataclass(frozen=True)
class ParserProblem:
    """One refusal of TensorRT's ONNX parser: the node (empty when it names none) and why."""

    node: str
    op_type: str
    message: str

    def describe(self) -> str:
        where = f"node '{self.node}' ({self.op_type})" if self.node or self.op_type else "model"
        return f"{where}: {self.message}"


def parse_problems(trt: TensorRT, parser, source: ModelSource, logger) -> list[ParserProblem]:
    """Parse `source` into the parser's network; every refusal, or [] when it parsed."""
    if source.split is not None:
        ok = _parse_split(parser, source.split)
    elif source.data is not None:
        ok = parser.parse(source.data, str(source.base_dir) if source.base_dir else None)
    else:
        ok = parser.parse_from_file(str(source.path))
    if ok:
        return []
    problems = []
    for index in range(parser.num_errors):
        error = parser.get_error(index)
        # The parser appends a CUDA-driver error it hit while checking the node; on a machine
        # without a GPU that noise hides the real reason, which comes first.
        desc = _CUDA_NOISE.sub("", clean(error.desc()))
        op_type = error.node_operator()
        if op_type and not parser.supports_operator(op_type) and (desc in ("", "false") or "lugin" in desc):
            # TensorRT's own words here are an assertion ("false", "creator && ...").
            desc = plugin_hint(trt, op_type) + (f" (TensorRT: {desc})" if "Could not create" in desc else "")
        problems.append(ParserProblem(error.node_name(), op_type, desc))
    return problems or [ParserProblem("", "", last_error(logger.messages))]


def _parse_split(parser, split: SplitModel) -> bool:
    """The structure, then each weight by its address: TensorRT reads them where they are."""
    if not hasattr(parser, "load_initializer"):  # TensorRT before 10.13: hand it the whole model as a file
        import tempfile

        import onnx

        with tempfile.TemporaryDirectory(prefix="trtc-parse-") as folder:
            path = Path(folder) / "model.onnx"
            onnx.save_model(split.joined(), str(path), save_as_external_data=True, location="model.onnx.data")
            return parser.parse_from_file(str(path))
    if not parser.load_model_proto(split.structure):
        return False
    for name in split.weights:
        view = split.array(name)
        if not parser.load_initializer(name, view.ctypes.data, view.nbytes):
            return False
    return parser.parse_model_proto()


def _parse(trt: TensorRT, parser, source: ModelSource, logger) -> None:
    problems = [problem.describe() for problem in parse_problems(trt, parser, source, logger)]
    if not problems:
        return
    unsupported = [p for p in problems if not p.startswith("model:")]
    summary = (
        f"TensorRT's ONNX parser refused {len(unsupported)} node(s)" if unsupported else "TensorRT's ONNX parser failed"
    )
    raise UnsupportedModelError(
        f"{summary}: {problems[0]}" + (f" (and {len(problems) - 1} more, listed below)" if len(problems) > 1 else ""),
        problems if len(problems) > 1 else [],
    )  # one problem: the message says it all


def configure(trt: TensorRT, builder, network, config, settings: BuildSettings) -> None:
    lib = trt.module
    config.profiling_verbosity = lib.ProfilingVerbosity.DETAILED
    if settings.workspace is not None:
        config.set_memory_pool_limit(lib.MemoryPoolType.WORKSPACE, settings.workspace)
    if settings.optimization_level is not None:
        config.builder_optimization_level = settings.optimization_level
    if settings.compute_capabilities:
        _set_compute_capabilities(trt, config, settings.compute_capabilities)
    if settings.timing_cache is not None:
        cache = config.create_timing_cache(settings.timing_cache)
        config.set_timing_cache(cache, ignore_mismatch=True)
    network_inputs = {network.get_input(i).name: network.get_input(i) for i in range(network.num_inputs)}
    for shapes in settings.profiles:
        profile = builder.create_optimization_profile()
        for name, shape_range in shapes.items():
            if name in network_inputs:
                profile.set_shape(name, shape_range.min, shape_range.opt, shape_range.max)
                if network_inputs[name].is_shape_tensor:
                    _set_shape_values(profile, name, shape_range)
        config.add_optimization_profile(profile)


def _set_shape_values(profile, name: str, shape_range: ShapeRange) -> None:
    """TensorRT takes this input's values as a shape (trtc's own detection may miss a path)."""
    if shape_range.values is None:
        raise SpecError(
            f"inputs.{name}: TensorRT uses this input's values as a shape and builds for a range of them; "
            f"give inputs: {{{name}: {{values: {{min: [...], opt: [...], max: [...]}}}}}}, or pin it with value: [...]"
        )
    values = shape_range.values
    profile.set_shape_input(name, values.min, values.opt, values.max)


def compute_capabilities(trt: TensorRT, capabilities: tuple[str, ...]) -> list:
    """The backend's members for `capabilities` (`target.compute_capabilities`); a spec error for
    one it cannot target, or for any when it builds only for its own GPU. Both commands ask right
    after importing TensorRT, before the model is read."""
    if not capabilities:
        return []
    enum = getattr(trt.module, "ComputeCapability", None)
    if enum is None or not hasattr(trt.module.IBuilderConfig, "set_compute_capability"):
        raise SpecError(
            f"target.compute_capabilities: {trt.name} builds for the GPU it runs on; remove the key or use target.backend: tensorrt-rtx"
        )
    members = {name: member for name, member in enum.__members__.items() if name.startswith("SM")}
    chosen = []
    for capability in capabilities:
        key = "SM" + capability.replace(".", "")
        if key not in members:
            valid = ", ".join(f"{m[2:-1]}.{m[-1]}" for m in members)
            raise SpecError(
                f"target.compute_capabilities: {trt.name} {trt.version} cannot target {capability}; it supports {valid}"
            )
        chosen.append(members[key])
    return chosen


def _set_compute_capabilities(trt: TensorRT, config, capabilities: tuple[str, ...]) -> None:
    chosen = compute_capabilities(trt, capabilities)
    config.num_compute_capabilities = len(chosen)
    for index, member in enumerate(chosen):
        config.set_compute_capability(member, index)


def _make_progress_monitor(lib, observer: BuildObserver | None):
    class ProgressMonitor(lib.IProgressMonitor):
        """Forwards TensorRT's phases. An exception in the observer, or a signal (Ctrl-C), cancels
        the build instead of unwinding through TensorRT's C++ frames; it is re-raised afterwards."""

        def __init__(self):
            lib.IProgressMonitor.__init__(self)
            self.interrupt: BaseException | None = None

        def phase_start(self, phase_name, parent_phase, num_steps):
            self._forward("phase_start", phase_name, parent_phase, num_steps)

        def step_complete(self, phase_name, step):
            self._forward("phase_step", phase_name, step)
            return self.interrupt is None and interrupts.requested() is None

        def phase_finish(self, phase_name):
            self._forward("phase_finish", phase_name)

        def _forward(self, method, *args):
            if self.interrupt is None and observer is not None:
                try:
                    getattr(observer, method)(*args)
                except BaseException as exc:  # noqa: BLE001 - re-raised after the build returns
                    self.interrupt = exc

    return ProgressMonitor()
