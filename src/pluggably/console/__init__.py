"""The web console: static files shipped inside the package (``static/``), the routes
that serve them (``routes.py``) and the console's own session and first-run routes
(``api.py``). No build step: the browser loads plain ES modules and vendored
libraries (``static/vendor/VENDORED.md``)."""
