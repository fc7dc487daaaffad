"""HTTP layer: routers, dependencies, middleware and error rendering."""
