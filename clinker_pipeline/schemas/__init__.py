"""Pandera models: the internal data model every feed produces and the planner reads."""

from clinker_pipeline.schemas.instance import INSTANCE_SCHEMAS

__all__ = ["INSTANCE_SCHEMAS"]
