"""One process each: run with `python -m flashsale.services.<name>`; `flashsale up` does it for you.

A consumer service is a plain batch handler and one line that runs it (`runner.run_consumer_service`); an HTTP
service is an app factory (`create_app(settings)`) that uvicorn runs (`runner.run_http_service`).
"""
