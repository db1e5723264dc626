"""Pandera models: the internal data model every feed produces and the planner reads.

One module per feed family; import the module you need (this package imports nothing, so a
feed schema never drags in the instance loader).
"""
