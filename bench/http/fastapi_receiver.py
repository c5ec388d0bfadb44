"""Seed 000's receiver, as published: FastAPI + uvicorn, one process, storing each upload.
(Kept as the seed wrote it, including its use of the client's file name; plus a trivial
in-memory GET so that wrk can measure FastAPI's own request rate beside Sluice's.)"""
import os, sys
import shutil
from fastapi import FastAPI, File, UploadFile
import uvicorn

app = FastAPI()
OUTPUT_DIR = sys.argv[2] if len(sys.argv) > 2 else "received_csv"
os.makedirs(OUTPUT_DIR, exist_ok=True)
JOBS = {"1": {"state": "complete", "stats": {"read": 10000, "inserted": 10000}}}

@app.post("/bulk_upload")
async def bulk_upload(file: UploadFile = File(...)):
    file_path = os.path.join(OUTPUT_DIR, file.filename)
    with open(file_path, "wb") as buffer:
        shutil.copyfileobj(file.file, buffer)
    return {"status": "sucesso", "filename": file.filename}

@app.get("/status/{job_id}")
async def status(job_id: str):
    return JOBS.get(job_id, {"state": "unknown"})

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
