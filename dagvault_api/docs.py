"""``/docs``: Swagger UI served from the files of the ``swagger-ui-bundle-v2`` package.

FastAPI's default page loads its scripts from a CDN: blank on a node without internet, and
on one with it the page runs a third party's code next to the API's token. Here every asset
comes from this server (FastAPI's "self-hosting" recipe), and Swagger UI's online validator
badge, which would send the schema's URL to swagger.io, is switched off. ReDoc has no such
package and is not served; ``/openapi.json`` stays for any other viewer.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"


def add_docs(app: FastAPI) -> None:
    app.mount(ASSETS_URL, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png",
            swagger_ui_parameters={"validatorUrl": None},
        )
