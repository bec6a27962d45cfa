"""``geex serve``: an OpenAI-compatible HTTP server over the engine's scheduler.

Layout (as vLLM's ``entrypoints/openai``): ``protocol`` (request shapes), ``errors`` (OpenAI-shaped
errors), ``engine_client`` (the bridge between the scheduler's thread and asyncio: events in,
cancellation out), ``completions`` and ``chat`` (the endpoints), ``metrics`` (Prometheus),
``middleware`` (request ids and the access log, body limit, API key), ``app`` (the FastAPI app and
its model loading), ``server`` (the listening socket, uvicorn, shutdown). The scheduler that
batches requests is the engine's (``geex.engine.scheduler``) and knows nothing of HTTP.
"""
