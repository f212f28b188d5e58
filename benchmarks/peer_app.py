"""The peer of ``serving_http.py``: a trivial FastAPI endpoint, served the way vidrec is."""

from fastapi import FastAPI

app = FastAPI()


@app.get("/users/{user_id}/recommendations")
async def recommendations(user_id: str, k: int = 10) -> dict:
    """A constant answer of vidrec's shape: what the HTTP stack alone costs."""
    return {"user_id": user_id, "items": [{"video_id": f"v{i}", "score": 0.0} for i in range(k)]}


@app.post("/videos")
async def upload(body: dict) -> dict:
    """A body taken whole, with no size limit: the peer of the body-flood benchmark."""
    return {"accepted": 1}
