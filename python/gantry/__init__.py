"""gantry: run functions in containers on your own machine, with Modal's API.

App files: ``gantry.App``, ``@app.function()``, ``@app.local_entrypoint()``, ``gantry.Image``.
Clients: ``gantry.Function.from_name(app, name)``, ``gantry.FunctionCall.from_id(call_id)``.
The guide's files run with ``import gantry as modal``.
"""
from . import exception
from ._context import current_function_call_id, current_input_id, is_local
from .app import App, Retries, asgi_app, concurrent, fastapi_endpoint, web_endpoint, wsgi_app
from .cls import Cls, batched, enter, exit, method, parameter
from .functions import Function, FunctionCall
from .image import Image
from .secret import Secret

__version__ = "0.1.0"
__all__ = [
    "App",
    "Cls",
    "Function",
    "FunctionCall",
    "Image",
    "Retries",
    "Secret",
    "asgi_app",
    "batched",
    "concurrent",
    "enter",
    "exit",
    "current_function_call_id",
    "current_input_id",
    "exception",
    "fastapi_endpoint",
    "is_local",
    "method",
    "parameter",
    "web_endpoint",
    "wsgi_app",
]
