"""Developer tools: the aggregator simulator for ``make run`` demos, end-to-end tests and benchmarks.

Nothing here is imported by the node at run time, and nothing imports Django at module level.
"""
