"""Put s3dlio into DLIO's factories, in this process, and run DLIO.

DLIO picks its storage, readers, generators and checkpointing through four factories that
take no plug-in. :func:`install` replaces their ``get_*`` static methods in memory (DLIO's
files are not touched): every storage type becomes :class:`~.storage.S3dlioStorage`, and the
npz/npy/hdf5/tfrecord readers and generators and the PyTorch/TensorFlow checkpointing become
s3dlio's (see their modules); anything else stays DLIO's. It also reads
``storage.storage_options`` (which DLIO 2.0.0 ignores) and checks the data, checkpoint and
storage-root names when DLIO loads its configuration, so a bad URI or option stops DLIO
before it starts.

:func:`run` is ``python -m s3dlio.integrations.dlio`` and ``s3dlio-dlio``: it installs, then
runs DLIO's own ``main`` with the same hydra arguments ``dlio_benchmark`` takes. An s3dlio
error (a missing bucket, missing credentials, an unknown scheme, ...) stops DLIO with one line
naming the error's type, the operation and the URI, written to DLIO's log and to stderr, exit
status 2 (all ranks are aborted under MPI), instead of a traceback from inside DLIO.

``S3DLIO_DLIO_OP_LOG=<path>.tsv.zst`` records every storage request DLIO makes through s3dlio
in the op-log (warp's format; DataLoader workers, forked or spawned, write
``<path>.worker-<pid>.tsv.zst`` beside it).

DataLoader workers started with ``multiprocessing_context: spawn`` re-import DLIO without these
replacements; an object in DLIO's pickled arguments installs them again when the worker
unpickles them (in DLIO's ``worker_init``). The readers module is imported only at the first
``get_reader`` call, as DLIO imports its own reader modules: in a spawned worker DLIO 2.0.0
starts its tracer (dftracer) inside ``worker_init``, whose profiling wrapper then closes an
event it never opened; DLIO's own reader module, imported after that start, opens one at import
(its module-level ``Profile``) and so balances it. Importing the readers earlier (at install,
before the tracer started) left the wrapper's close unbalanced, and dftracer's native code
aborted the worker ("double free or corruption") on its next event: the first read.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from typing import Any

from ...errors import S3DlioError
from ...io.uri import parse_uri
from .paths import has_scheme

__all__ = ["install", "install_s3dlio_storage", "run"]

_installed = False


class _Installer:
    """Kept in DLIO's pickled arguments: unpickling it (in a spawned DataLoader worker)
    installs s3dlio there too."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_reinstalled, ())


def _reinstalled() -> _Installer:
    install()
    _worker_op_log()
    return _Installer()


def _worker_op_log() -> None:
    """In a spawned worker of a run with ``S3DLIO_DLIO_OP_LOG``: log beside the parent's log,
    as a forked worker does (a forked one, or the parent, already logs: nothing to do)."""
    from ...io.oplog import init_op_log, is_op_log_active, worker_log_path

    path = os.environ.get("S3DLIO_DLIO_OP_LOG")
    if path and not is_op_log_active():
        init_op_log(worker_log_path(path, os.getpid()), client_id="dlio")


def install() -> None:
    """Install s3dlio's storage, readers, generators and checkpointing into DLIO's factories
    in this process (idempotent). Nothing on disk changes."""
    global _installed
    if _installed:
        return
    from dlio_benchmark.checkpointing.checkpointing_factory import CheckpointingFactory
    from dlio_benchmark.data_generator.generator_factory import GeneratorFactory
    from dlio_benchmark.reader.reader_factory import ReaderFactory
    from dlio_benchmark.storage.storage_factory import StorageFactory
    from dlio_benchmark.utils import config as dlio_config

    from .checkpointing import checkpointing_class
    from .generators import generator_class
    from .storage import S3dlioStorage

    dlio_storage = StorageFactory.get_storage
    dlio_reader = ReaderFactory.get_reader
    dlio_generator = GeneratorFactory.get_generator
    dlio_mechanism = CheckpointingFactory.get_mechanism
    dlio_load_config = dlio_config.LoadConfig

    def get_storage(storage_type: Any, namespace: Any, framework: Any = None) -> Any:
        if str(getattr(storage_type, "value", storage_type)).lower() == "aistore":
            return dlio_storage(storage_type, namespace, framework)
        return S3dlioStorage(namespace, framework)

    def get_reader(type: Any, dataset_type: Any, thread_index: Any, epoch_number: Any) -> Any:  # noqa: A002
        # Imported at the first call, as DLIO imports its readers (see the module's docstring:
        # earlier, a spawned worker's tracer aborts it).
        from .readers import reader_class

        args = dlio_config.ConfigArguments.get_instance()
        cls = None
        if getattr(args, "reader_class", None) is None:
            cls = reader_class(type, getattr(args, "data_loader", None))
        if cls is None:
            return dlio_reader(type, dataset_type, thread_index, epoch_number)
        return cls(dataset_type, thread_index, epoch_number)

    def get_generator(type: Any) -> Any:  # noqa: A002
        cls = generator_class(type)
        if cls is not None:
            return cls()
        _local_only(type, dlio_config.ConfigArguments.get_instance())
        return dlio_generator(type)

    def get_mechanism(mechanism: Any) -> Any:
        args = dlio_config.ConfigArguments.get_instance()
        cls = None
        if getattr(args, "checkpoint_mechanism_class", None) is None:
            cls = checkpointing_class(mechanism)
        if cls is None:
            return dlio_mechanism(mechanism)
        return cls.get_instance()  # type: ignore[attr-defined]

    @functools.wraps(dlio_load_config)
    def load_config(args: Any, config: Any) -> Any:
        result = dlio_load_config(args, config)
        _read_options(args, config)
        _check_names(args)
        args._s3dlio_installer = _Installer()
        return result

    StorageFactory.get_storage = staticmethod(get_storage)
    ReaderFactory.get_reader = staticmethod(get_reader)
    GeneratorFactory.get_generator = staticmethod(get_generator)
    CheckpointingFactory.get_mechanism = staticmethod(get_mechanism)
    dlio_config.LoadConfig = load_config
    main = sys.modules.get("dlio_benchmark.main")
    if main is not None:
        main.LoadConfig = load_config  # type: ignore[attr-defined]
    _installed = True


def install_s3dlio_storage(dlio_path: str | None = None) -> None:
    """The original s3dlio's name: it copied a storage file into DLIO's source tree; here it
    installs s3dlio into DLIO in this process (``dlio_path`` is accepted and not written to)."""
    install()


def _read_options(args: Any, config: Any) -> None:
    """``storage.storage_options`` onto DLIO's arguments (DLIO 2.0.0 does not read it)."""
    if getattr(args, "storage_options", None) is not None:
        return
    storage = config.get("storage") if hasattr(config, "get") else None
    options = storage.get("storage_options") if storage is not None else None
    if options is None:
        return
    try:
        from omegaconf import OmegaConf

        options = OmegaConf.to_container(options, resolve=True)
    except (ImportError, ValueError):
        options = dict(options)
    args.storage_options = options


def _check_names(args: Any) -> None:
    """Refuse a bad URI or storage option now, before DLIO generates or reads anything."""
    from .storage import context, resolve

    context(args)  # builds the client: unknown options raise here
    for folder in ("storage_root", "data_folder", "checkpoint_folder"):
        name = getattr(args, folder, None)
        if not name:
            continue
        target = name if folder == "storage_root" else resolve(args, name)
        if has_scheme(target):
            parse_uri(target)


def _local_only(format_type: Any, args: Any) -> None:
    """DLIO 2.0.0's other generators write local files: refuse a remote data folder for them."""
    from dlio_benchmark.storage.storage_handler import DataStorage

    from ...errors import UnsupportedOperationError
    from .storage import resolve

    target = resolve(args, args.data_folder)
    if hasattr(DataStorage, "islocalfs") or not has_scheme(target):
        return
    if target.lower().startswith(("file://", "direct://")):
        return
    raise UnsupportedOperationError(
        f"this DLIO's {getattr(format_type, 'value', format_type)} generator writes local "
        "files only; generate npz, npy, hdf5 or tfrecord, or use a newer DLIO",
        uri=target,
        op="PUT",
    )


class _Stopped(BaseException):
    """DLIO stopped on an s3dlio error (a BaseException so that hydra passes it through)."""

    def __init__(self, error: S3DlioError) -> None:
        super().__init__(str(error))
        self.error = error


def s3dlio_error(exc: BaseException | None) -> S3DlioError | None:
    """The s3dlio error ``exc`` is, or was raised from (its cause/context chain)."""
    seen = 0
    while exc is not None and seen < 20:
        if isinstance(exc, S3DlioError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


#: What PyTorch's DataLoader makes of an error raised in a worker: the same type, with this
#: message (the worker's whole traceback, ending in the original ``<type>: <message>`` line).
_WORKER_ERROR = re.compile(
    r"\ACaught (?P<type>\w+) in (?P<where>DataLoader worker process \d+)\.\n"
    r".*^(?:[\w.]+\.)?(?P=type): (?P<message>.*)\Z",
    re.DOTALL | re.MULTILINE,
)


def describe(error: S3DlioError) -> str:
    """``<module>.<type>: <message>`` of ``error`` in one line; an error PyTorch brought back
    from a DataLoader worker keeps its original message and names the worker, not its
    traceback."""
    message = str(error)
    worker = _WORKER_ERROR.match(message)
    if worker is not None:
        message = f"{worker['message'].strip()} (in {worker['where']})"
    return f"{type(error).__module__}.{type(error).__name__}: {message}"


def _report(error: S3DlioError) -> str:
    line = f"s3dlio: DLIO stopped: {describe(error)}"
    root = logging.getLogger()
    logged = any(isinstance(h, logging.FileHandler) for h in root.handlers)
    root.error(line)  # the root logger: hydra's logging config disables the others
    if not logged:
        try:
            from dlio_benchmark.utils.config import ConfigArguments

            path = getattr(ConfigArguments.get_instance(), "logfile_path", None)
        except Exception:  # noqa: BLE001 - best effort: DLIO may not have got that far
            path = None
        if path:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)  # DLIO makes it next
            handler = logging.FileHandler(path)
            handler.setFormatter(logging.Formatter("[ERROR] %(message)s"))
            handler.emit(logging.LogRecord("s3dlio", logging.ERROR, "", 0, line, None, None))
            handler.close()
    print(line, file=sys.stderr, flush=True)
    return line


def _finish_mpi(failed: bool) -> None:
    try:
        from mpi4py import MPI

        if not MPI.Is_initialized() or MPI.Is_finalized():
            return
        if failed and MPI.COMM_WORLD.Get_size() > 1:
            MPI.COMM_WORLD.Abort(2)  # the other ranks would wait in a barrier forever
        MPI.Finalize()
    except ImportError:
        return


def run(argv: list[str] | None = None) -> int:
    """Run DLIO (``dlio_benchmark``'s hydra arguments) with s3dlio installed.

    Returns:
        0 when DLIO finished, 2 when it stopped on an s3dlio error (reported in one line).
    """
    args = sys.argv[1:] if argv is None else list(argv)
    sys.argv = ["s3dlio-dlio", *args]
    install()
    import dlio_benchmark.main as dlio_main
    import hydra

    dlio_main.LoadConfig = sys.modules["dlio_benchmark.utils.config"].LoadConfig
    task = getattr(dlio_main.run_benchmark, "__wrapped__", None)
    if task is None:  # pragma: no cover - every DLIO so far wraps run_benchmark with hydra
        raise RuntimeError("this DLIO's run_benchmark is not a hydra task")

    @functools.wraps(task)
    def guarded(cfg: Any) -> Any:
        try:
            return task(cfg)
        except Exception as exc:
            error = s3dlio_error(exc)
            if error is None:
                raise
            raise _Stopped(error) from None

    op_log = os.environ.get("S3DLIO_DLIO_OP_LOG")
    if op_log:
        from ...io.oplog import init_op_log

        init_op_log(op_log, client_id="dlio")
    configs = os.path.join(os.path.dirname(os.path.abspath(dlio_main.__file__)), "configs")
    dlio_main.run_benchmark = hydra.main(
        version_base=None, config_path=configs, config_name="config"
    )(guarded)
    try:
        dlio_main.main()
    except _Stopped as stop:
        _report(stop.error)
        _finish_mpi(failed=True)
        return 2
    finally:
        if op_log:
            from ...io.oplog import finalize_op_log

            finalize_op_log()
    return 0


def main() -> None:
    """Console entry point ``s3dlio-dlio``."""
    raise SystemExit(run())
