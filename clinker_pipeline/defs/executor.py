"""The executor every job runs under: Dagster's default, or Celery workers when configured.

`CLINKER_EXECUTOR=celery` sends each step to a dagster-celery worker through the broker in
`CLINKER_CELERY_BROKER` (RabbitMQ; default `pyamqp://guest@127.0.0.1//`) on the queue in
`CLINKER_CELERY_QUEUE` (default `dagster`). The variable is read when a run starts, never when
the code location loads, so the webserver, the daemon and a run may each decide for themselves
and a run config can still pick `multiprocess`, `in_process` or `celery` explicitly. With nothing
set, a run gets exactly Dagster's default executor (multiprocess, or in-process when asked).
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from dagster._config import post_process_config
from dagster._core.definitions.executor_definition import (
    _get_default_executor_requirements,
    multi_or_in_process_executor,
)
from dagster._core.execution.retries import RetryMode, get_retries_config

from clinker_pipeline.errors import ClinkerError

DEFAULT_BROKER = "pyamqp://guest@127.0.0.1//"
EXECUTORS = ("multiprocess", "celery")

_CELERY_CONFIG = {
    "broker": dg.Field(dg.StringSource, is_required=False),
    "backend": dg.Field(dg.StringSource, is_required=False, default_value="rpc://"),
    "queue": dg.Field(dg.StringSource, is_required=False),
    "include": dg.Field([str], is_required=False),
    "config_source": dg.Field(dg.Permissive(), is_required=False),
    "retries": get_retries_config(),
}
_DEFAULT_FIELD = multi_or_in_process_executor.config_schema.as_field()
_DEFAULT_CONFIG = _DEFAULT_FIELD.config_type.fields


def _chosen(config: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(mode, its config): the run config's choice, else `CLINKER_EXECUTOR`."""
    mode = next(iter(config), "auto")
    if mode != "auto":
        return mode, config[mode] or {}
    mode = os.getenv("CLINKER_EXECUTOR", "multiprocess").strip().lower() or "multiprocess"
    if mode not in EXECUTORS:
        raise ClinkerError(f"CLINKER_EXECUTOR must be one of {', '.join(EXECUTORS)}, got {mode!r}")
    return mode, {}


def celery_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The CeleryExecutor's arguments; the worker's YAML (`celery_worker_config`) must match."""
    queue = config.get("queue") or os.getenv("CLINKER_CELERY_QUEUE", "").strip() or "dagster"
    return {
        "broker": config.get("broker") or os.getenv("CLINKER_CELERY_BROKER") or DEFAULT_BROKER,
        "backend": config.get("backend") or "rpc://",
        "include": config.get("include") or [],
        "config_source": {**(config.get("config_source") or {}), "task_default_queue": queue},
    }


def _requirements(config: dict[str, Any]) -> list[Any]:
    mode, _ = _chosen(config)
    if mode == "celery":
        return dg.multiple_process_executor_requirements()
    return _get_default_executor_requirements(_default_config(config))


def _default_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config Dagster's default executor would get (its defaults filled in)."""
    if next(iter(config), "auto") == "auto":
        config = _DEFAULT_FIELD.default_value
    return post_process_config(_DEFAULT_FIELD.config_type, config).value


@dg.executor(
    name="clinker",
    config_schema=dg.Field(
        dg.Selector({"auto": {}, **_DEFAULT_CONFIG, "celery": _CELERY_CONFIG}),
        default_value={"auto": {}},
    ),
    requirements=_requirements,
)
def clinker_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    """Dagster's default executor unless the run (or `CLINKER_EXECUTOR`) asks for Celery."""
    mode, config = _chosen(dict(init_context.executor_config or {}))
    if mode != "celery":
        default = _default_config(dict(init_context.executor_config or {}))
        context = init_context._replace(executor_config=default)
        return multi_or_in_process_executor.executor_creation_fn(context)  # type: ignore[misc]
    try:
        from dagster_celery.executor import CeleryExecutor
    except ImportError:
        raise ClinkerError(
            "CLINKER_EXECUTOR=celery needs dagster-celery: pip install -e '.[scale]'"
        ) from None
    return CeleryExecutor(
        retries=RetryMode.from_config(config.get("retries", {"enabled": {}})),
        **celery_settings(config),
    )


def celery_worker_config(queue: str | None = None, broker: str | None = None) -> dict[str, Any]:
    """The YAML a worker is started with (`dagster-celery worker start -y FILE -q QUEUE`)."""
    settings = celery_settings({"queue": queue, "broker": broker})
    return {
        "execution": {
            "config": {
                "broker": settings["broker"],
                "backend": settings["backend"],
                "config_source": settings["config_source"],
            }
        }
    }


if __name__ == "__main__":
    # `python -m clinker_pipeline.defs.executor celery.yaml`: the workers' config, from the same
    # environment (CLINKER_CELERY_BROKER, CLINKER_CELERY_QUEUE) the runs read.
    import sys

    import yaml

    with open(sys.argv[1], "w", encoding="utf-8") as out:
        yaml.safe_dump(celery_worker_config(), out)
