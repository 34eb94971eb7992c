"""gantry: run functions in containers on your own machine, with Modal's API.

App files: ``gantry.App``, ``@app.function()``, ``@app.local_entrypoint()``, ``gantry.Image``;
in a program, ``with app.run():`` (an app for the block), ``app.deploy()``, ``gantry.enable_output()``.
Clients: ``gantry.Function.from_name(app, name)``, ``gantry.FunctionCall.from_id(call_id)``.
Volumes: ``gantry.Volume.from_name(name)``, mounted with ``@app.function(volumes={"/data": vol})``.
Dicts and Queues: ``gantry.Dict.from_name(name)``, ``gantry.Queue.from_name(name)`` (or ``.ephemeral()``).
Sandboxes: ``gantry.Sandbox.create(*cmd, app=gantry.App.lookup(name, create_if_missing=True))``.
The guide's files run with ``import gantry as modal``.
"""
from . import exception
from ._context import current_function_call_id, current_input_id, is_local
from .app import App, Retries, asgi_app, concurrent, enable_output, fastapi_endpoint, web_endpoint, wsgi_app
from .cls import Cls, batched, enter, exit, method, parameter
from .functions import Function, FunctionCall
from .image import Image
from .schedule import Cron, Period
from .secret import Secret
from . import volume
from .volume import FileEntry, FileEntryType, Volume
from ._dict import Dict
from ._queue import Queue
from . import sandbox
from .sandbox import ContainerProcess, Sandbox

__version__ = "0.1.0"
__all__ = [
    "Cron",
    "Period",
    "App",
    "Cls",
    "Dict",
    "Function",
    "FunctionCall",
    "Image",
    "Queue",
    "Retries",
    "Sandbox",
    "ContainerProcess",
    "Secret",
    "Volume",
    "asgi_app",
    "batched",
    "concurrent",
    "enter",
    "exit",
    "current_function_call_id",
    "current_input_id",
    "enable_output",
    "exception",
    "volume",
    "sandbox",
    "fastapi_endpoint",
    "is_local",
    "method",
    "parameter",
    "web_endpoint",
    "wsgi_app",
]
