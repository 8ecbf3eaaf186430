"""The API's interactive documentation, served by releaseflow itself: no asset comes from a CDN (the
machine where releaseflow runs may have no internet).

Swagger UI's files come from the ``swagger-ui-py`` package (Swagger UI 5, which reads the OpenAPI 3.1
that FastAPI writes; Apache-2.0, its LICENSE is served beside them at ``/docs/assets/LICENSE``).
``/docs`` is FastAPI's Swagger page pointed at ``/docs/assets``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

from releaseflow.api.errors import ApiError

DOCS_URL = "/docs"
ASSETS = DOCS_URL + "/assets"
OAUTH2_REDIRECT = DOCS_URL + "/oauth2-redirect"
# The files the page loads, and the licence they come under: nothing else of the package is served.
SERVED = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE")


def assets_folder() -> Path:
    """Where the installed ``swagger-ui-py`` keeps Swagger UI (found without importing the package)."""
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the swagger-ui-py package is not installed (releaseflow depends on it)")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def docs_routes(openapi_url: str = "/openapi.json", title: str = "releaseflow") -> APIRouter:
    router = APIRouter(include_in_schema=False)
    folder = assets_folder()

    @router.get(DOCS_URL)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} API",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon-32x32.png",
            oauth2_redirect_url=OAUTH2_REDIRECT,
        )

    @router.get(OAUTH2_REDIRECT)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get(ASSETS + "/{name}")
    async def asset(name: str) -> FileResponse:
        if name not in SERVED:
            raise ApiError(404, f"no documentation asset '{name}'")
        media = "text/plain" if name == "LICENSE" else None
        return FileResponse(folder / name, media_type=media)

    return router
