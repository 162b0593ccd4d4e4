"""``medsegai serve``: the runner over HTTP(S) for remote clients (FastAPI + uvicorn, the ``server`` extra).

Secure by default: it binds 127.0.0.1; any other address needs a token (compared in constant
time) or it refuses to start. Jobs queue per device with the predictor kept loaded
(:mod:`.jobs`), progress streams as server-sent events, interactive sessions reuse the worker's
session host (:mod:`.sessions_http`). Clients live in :mod:`medsegai.remote` and need only
``requests``. Nothing here is imported by the runner itself.
"""
