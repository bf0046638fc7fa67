"""``omnitok serve``: one loaded model behind an OpenAI-compatible HTTP API, a batcher and a web page.

The engine (:mod:`omnitok.serve.engine`) needs only torch; the app (:mod:`omnitok.serve.app`) needs the ``serve``
extra (FastAPI, uvicorn, python-multipart), so it is imported on its own: ``from omnitok.serve.app import
create_app``.
"""

from omnitok.serve.engine import Batcher, Job, ServedModel, TextStream, load_served_model

__all__ = ["Batcher", "Job", "ServedModel", "TextStream", "load_served_model"]
