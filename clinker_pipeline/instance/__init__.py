"""The planning instance: its tables, how they are read, parsed and validated."""

from clinker_pipeline.instance.loader import (
    Instance,
    load_instance,
    sample_instance_path,
    validate_instance,
)
from clinker_pipeline.instance.problems import Problem
from clinker_pipeline.instance.tables import TABLES, TABLES_BY_NAME

__all__ = [
    "TABLES",
    "TABLES_BY_NAME",
    "Instance",
    "Problem",
    "load_instance",
    "sample_instance_path",
    "validate_instance",
]
