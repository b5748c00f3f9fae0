#!/usr/bin/env python3
"""Serves a GGUF model on llama-cpp-python's OpenAI-compatible server, the suspect of
`tracemark audit --suspect-url` (tests/live_endpoint.rs starts it; so can a reader).

    serve-suspect.py --model MODEL.gguf --port 8000 [--api-key KEY] [--watermark PROFILE]

With --watermark, every completion the server samples goes through tracemark's own
llama-cpp-python logits processor under the profile's key: a stand-in for a student that learned
the watermark perfectly (rho = 100%). Without it the model is served untouched: an innocent
suspect. The server is llama-cpp-python's own (`llama_cpp.server.app`); only the request
preparation is wrapped, to add the processor. The API key, when given, is read from the
environment variable --api-key-env names, so that it never shows in a process listing.
"""

from __future__ import annotations

import argparse
import os
import sys


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="GGUF weights to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--alias", default="suspect", help="the model name the server reports")
    parser.add_argument("--api-key-env", help="environment variable holding the API key clients must send")
    parser.add_argument("--watermark", metavar="PROFILE", help="tracemark profile: watermark every answer")
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    return parser.parse_args()


def watermarking(profile: str) -> None:
    """Adds tracemark's logits processor to every completion and chat completion."""
    import llama_cpp
    import llama_cpp.server.app as app
    import tracemark
    from tracemark.adapters.llama_cpp import LlamaCppWatermark

    processor = LlamaCppWatermark(tracemark.Watermark.from_profile(profile))
    prepare = app.prepare_request_resources

    def prepare_watermarked(body, llama_proxy, body_model, kwargs):
        llama = prepare(body, llama_proxy, body_model, kwargs)
        processors = kwargs.get("logits_processor") or llama_cpp.LogitsProcessorList([])
        processors.append(processor)
        kwargs["logits_processor"] = processors
        return llama

    # The endpoints look the function up in the module at each request.
    app.prepare_request_resources = prepare_watermarked


def main() -> int:
    args = parse_args()
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    if args.api_key_env and not api_key:
        print(f"error: {args.api_key_env} is not set", file=sys.stderr)
        return 1
    if args.watermark:
        watermarking(args.watermark)
    server = ServerSettings(host=args.host, port=args.port, api_key=api_key)
    model = ModelSettings(
        model=args.model,
        model_alias=args.alias,
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    app = create_app(server_settings=server, model_settings=[model])
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
