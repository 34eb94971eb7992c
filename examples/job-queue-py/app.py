# The job-queue example in Python: deploy it, spawn calls, poll results by call ID.
#   gantry deploy examples/job-queue-py/app.py
#   gantry run examples/job-queue-py/app.py --data hello     (runs main() below, here)
import gantry

app = gantry.App("my-job-queue-py")


@app.function(retries=3, timeout=60)
def process_job(data):
    return {"result": data}


@app.local_entrypoint()
def main(data: str = "my-data"):
    process = gantry.Function.from_name("my-job-queue-py", "process_job")
    call = process.spawn(data)
    print(f"spawned {call.object_id}")
    try:
        print(gantry.FunctionCall.from_id(call.object_id).get(timeout=30))
    except TimeoutError:
        print("still pending; poll again with: gantry get", call.object_id)
