"""Requests to an OpenAI-compatible endpoint (a served judge, the SPA reviser): back-off while it is down or busy,
and one sentence naming the endpoint when it cannot succeed, so a long build or judging stage stops cleanly."""
from __future__ import annotations

import logging
import threading
import time

log = logging.getLogger("bench.endpoint")


class EndpointError(RuntimeError):
    """The endpoint is down, refuses us, or keeps answering garbage (one sentence)."""

    user_error = True  # bench's CLI prints it as one line, exit 2


def with_backoff(fn, *, role: str, base_url: str, retries: int, delay: float = 1.0, garbage: tuple = (),
                 abort: threading.Event | None = None, where: str = "", hint: str = ""):
    """``fn()``, retried ``retries`` times with doubling delays (at most 30 s) on network and server errors and on
    the exception types in ``garbage`` (an answer that cannot be read); a refused API key is final at once. A set
    ``abort`` stops retrying (another worker already failed, or the run is stopping)."""
    import openai

    transient = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError, openai.InternalServerError)
    for attempt in range(retries + 1):
        try:
            return fn()
        except (openai.AuthenticationError, openai.PermissionDeniedError) as e:
            raise EndpointError(f"{role} endpoint {base_url} refused the API key ({e}); set the key's environment "
                                "variable (option api_key_env)") from None
        except transient as e:
            why, detail = "unreachable or failing", f"{type(e).__name__}: {e}"
        except garbage as e:
            why, detail = "answered garbage", f"{type(e).__name__}: {str(e)[:120]}"
        if attempt == retries or (abort is not None and abort.is_set()):
            break
        log.warning("%s endpoint %s %s (%s); retry %d in %.1f s", role, base_url, why, detail, attempt + 1, delay)
        time.sleep(delay)
        delay = min(delay * 2, 30)
    raise EndpointError(f"{role} endpoint {base_url} {why} after {attempt + 1} attempts{where} ({detail}); is the "
                        f"server up? (`bench serve MODEL` starts one{hint})")
