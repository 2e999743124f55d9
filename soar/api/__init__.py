"""``soar api``: the HTTP API (FastAPI). Routers live one per module and are listed in ``app.ROUTERS``."""
