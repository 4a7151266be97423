"""Pure recommendation logic: models, ports, the recommender and the cache-aside service.

Nothing here performs I/O or imports a web, cache or database framework; adapters
implement the ports in `domain.ports` and the composition root wires them in.
"""
