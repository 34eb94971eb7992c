# Modal's job-queue guide (docs/guide/job-queue), with `import modal` changed to `import gantry as modal`.
import gantry as modal

app = modal.App("my-job-queue")


@app.function()
def process_job(data):
    # Perform the job processing here
    return {"result": data}


def submit_job(data):
    # Since the `process_job` function is deployed, need to first look it up
    process_job = modal.Function.from_name("my-job-queue", "process_job")
    call = process_job.spawn(data)
    return call.object_id


def get_job_result(call_id):
    function_call = modal.FunctionCall.from_id(call_id)
    try:
        result = function_call.get(timeout=5)
    except modal.exception.OutputExpiredError:
        result = {"result": "expired"}
    except TimeoutError:
        result = {"result": "pending"}
    return result


@app.local_entrypoint()
def main():
    data = "my-data"

    # Submit the job to Modal
    call_id = submit_job(data)
    print(f"Polling for result of call {call_id}")
    print(get_job_result(call_id))
