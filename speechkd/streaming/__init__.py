"""Streaming: transcribe audio as it arrives (LocalAgreement), in the terminal or behind a WebSocket server.

`stream.stream(StreamConfig(...))` runs the terminal demo; `serve.run_server` the browser one.
"""
