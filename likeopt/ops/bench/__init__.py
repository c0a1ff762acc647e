"""``likeopt bench``: load tests of a running mesh through Envoy, with honest figures.

The modules are small on purpose: ``stats`` (percentiles, histograms), ``sse`` (reading
an event stream), ``scenarios`` (what each scenario sends), ``load`` (the asyncio load
generator), ``probes`` (cache counters and memory read from the processes themselves),
``report`` (text, JSON and HTML) and ``runner`` (one run, start to finish).
"""
