"""The ``/api`` routes, one module per resource family.

Each module lists ``ROUTES`` as ``(method, path under /api, view)``; the view
function is named after the spec's operationId, which the app uses as the
Flask endpoint name and so as the rate-limit and fault key.
"""

from . import accounts, catalog, catalog_bulk, events, imports, lists, privacy, profiles, segments

ROUTES = [*profiles.ROUTES, *events.ROUTES, *lists.ROUTES, *segments.ROUTES, *imports.ROUTES, *privacy.ROUTES,
          *accounts.ROUTES, *catalog.ROUTES, *catalog_bulk.ROUTES]

__all__ = ["ROUTES"]
