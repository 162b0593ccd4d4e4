"""``medsegai serve`` (and, registered with it, ``--server`` for ``medsegai segment`` / ``interactive``).

FastAPI and uvicorn are imported only when the server starts, so ``medsegai --help`` and the
remote client work without the ``server`` extra; the bind and token checks run before that
import, so an unsafe setup is refused at once.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from ..errors import MedSegAIError
from ..remote.protocol import SERVER_KEEP_ALIVE_S


def register(sub) -> None:
    p = sub.add_parser("serve", help="serve segmentation jobs and interactive sessions over HTTP(S)",
                       description="Run a MedSegAI server. It binds 127.0.0.1 unless --host says otherwise; any "
                                   "other address needs a token.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default=None, help="the token clients must send (or $MEDSEGAI_TOKEN)")
    p.add_argument("--token-file", default=None, help="tokens, one per line as name:token (several users)")
    p.add_argument("--ssl-certfile", default=None, help="TLS certificate (PEM); with --ssl-keyfile")
    p.add_argument("--ssl-keyfile", default=None)
    p.add_argument("-d", "--device", nargs="+", default=["auto"],
                   help="devices to run jobs on, one job at a time each (default: every GPU, else the CPU)")
    p.add_argument("-nt", "--threads", type=int, default=None, help="CPU threads per job")
    p.add_argument("--max-queue", type=int, default=8, help="jobs that may wait before the server answers 429")
    p.add_argument("--result-ttl", type=float, default=3600.0, help="seconds a finished job's files are kept")
    p.add_argument("--max-upload-mb", type=float, default=2048.0, help="largest accepted upload")
    p.add_argument("--session-idle", type=float, default=900.0,
                   help="seconds an idle interactive session is kept (its lease)")
    p.add_argument("--max-sessions", type=int, default=4)
    p.add_argument("--interactive-engine", default="auto", help="engine for sessions that ask for 'auto'")
    p.add_argument("--interactive-model", default=None, help="model folder of the interactive engine")
    p.add_argument("--work-dir", default=None, help="folder for uploads and results (default: a new temp folder)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    p.set_defaults(func=_cmd_serve)
    from ..remote.cli import extend

    extend(sub)


def _cmd_serve(args) -> int:
    from .auth import check_bind, load_tokens

    if (args.ssl_certfile is None) != (args.ssl_keyfile is None):
        raise MedSegAIError("TLS needs both --ssl-certfile and --ssl-keyfile.")
    for path in (args.ssl_certfile, args.ssl_keyfile, args.interactive_model):
        if path is not None and not Path(path).exists():
            raise MedSegAIError(f"{path} does not exist.")
    if min(args.max_queue, args.max_sessions) < 0 or args.result_ttl <= 0 or args.max_upload_mb <= 0:
        raise MedSegAIError("--max-queue, --max-sessions, --result-ttl and --max-upload-mb must be positive.")
    tokens = load_tokens(args.token, args.token_file)
    warnings = check_bind(args.host, tokens, tls=args.ssl_certfile is not None)
    try:
        import uvicorn

        from .app import create_app
    except ModuleNotFoundError as exc:
        raise MedSegAIError(f"'medsegai serve' needs the server extra ({exc.name} is missing): "
                            f"pip install 'medsegai[server]'") from None
    from . import logs
    from .config import ServerConfig

    logs.setup(args.log_level)
    for w in warnings:
        logs.log("warning", level=30, message=w)
    own_dir = args.work_dir is None
    work = Path(tempfile.mkdtemp(prefix="medsegai-serve-")) if own_dir else Path(args.work_dir)
    if not own_dir:
        # Jobs live in memory: what a previous server left cannot be served again.
        for leftover in ("jobs", "sessions"):
            shutil.rmtree(work / leftover, ignore_errors=True)
    config = ServerConfig(work_dir=work, tokens=tokens, devices=list(args.device), threads=args.threads,
                          max_queue=args.max_queue, result_ttl_s=args.result_ttl,
                          max_upload_bytes=int(args.max_upload_mb * (1 << 20)), session_idle_s=args.session_idle,
                          max_sessions=args.max_sessions, interactive_engine=args.interactive_engine,
                          interactive_model=args.interactive_model)
    scheme = "https" if args.ssl_certfile else "http"
    logs.log("serving", url=f"{scheme}://{args.host}:{args.port}", auth=tokens.enabled, users=len(tokens))
    try:
        uvicorn.run(create_app(config), host=args.host, port=args.port, ssl_certfile=args.ssl_certfile,
                    ssl_keyfile=args.ssl_keyfile, log_config=None, log_level=args.log_level, access_log=False,
                    server_header=False, timeout_graceful_shutdown=5,
                    timeout_keep_alive=SERVER_KEEP_ALIVE_S)
    finally:
        if own_dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0
