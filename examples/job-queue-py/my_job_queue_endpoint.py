# Modal's job-queue guide, second file (docs/guide/job-queue), with only its imports changed to
# gantry: FastAPI comes from the package index with pip_install("fastapi[standard]"). Deploy
# examples/job-queue-py/my_job_queue.py first (the guide's first file: my-job-queue's process_job).
import fastapi

import gantry as modal
from gantry.functions import FunctionCall

image = modal.Image.debian_slim().pip_install("fastapi[standard]")
app = modal.App("fastapi-modal", image=image)
web_app = fastapi.FastAPI()


@app.function()
@modal.asgi_app()
def fastapi_app():
    return web_app


@web_app.post("/submit")
async def submit_job_endpoint(data):
    process_job = modal.Function.from_name("my-job-queue", "process_job")

    call = await process_job.spawn.aio(data)
    return {"call_id": call.object_id}


@web_app.get("/result/{call_id}")
async def get_job_result_endpoint(call_id: str):
    function_call = FunctionCall.from_id(call_id)
    try:
        result = await function_call.get.aio(timeout=0)
    except modal.exception.OutputExpiredError:
        return fastapi.responses.JSONResponse(content="", status_code=404)
    except TimeoutError:
        return fastapi.responses.JSONResponse(content="", status_code=202)

    return result
