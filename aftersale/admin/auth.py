"""Who may see the admin page: one password, a signed session, a login rate limit.

The session holds a keyed fingerprint of ADMIN_PASSWORD, not just "logged
in": changing the password ends every session made with the old one.
Login attempts are counted per client address in Redis (the ``limits``
library's moving window), so several web processes share one count.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from functools import cached_property

#: login attempts allowed per client address and minute
ATTEMPTS_PER_MINUTE = 5
SESSION_KEY = "admin"


def fingerprint(config) -> str:
    """What a logged-in session holds: bound to this password and this SECRET_KEY."""
    return hmac.new(
        config.secret_key.encode(), b"admin login " + config.admin_password.encode(), hashlib.sha256
    ).hexdigest()[:32]


def password_matches(config, given: str) -> bool:
    """Compared in constant time, so the time taken tells nothing about the password."""
    return hmac.compare_digest(given.encode(), config.admin_password.encode())


def is_logged_in(session, config) -> bool:
    held = session.get(SESSION_KEY)
    return isinstance(held, str) and hmac.compare_digest(held, fingerprint(config))


class LoginLimiter:
    """ATTEMPTS_PER_MINUTE login attempts per address, counted in the runtime's Redis."""

    def __init__(self, runtime):
        self.runtime = runtime

    @cached_property
    def item(self):
        # ``limits`` costs every web worker 1.6 MB, and only a login uses it
        # deferred import: loaded by the first login attempt
        from limits import RateLimitItemPerMinute

        return RateLimitItemPerMinute(ATTEMPTS_PER_MINUTE)

    @cached_property
    def _limiter(self):
        # deferred import: as for ``item`` above
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        storage = RedisStorage(
            self.runtime.config.redis_url,
            connection_pool=self.runtime.redis.connection_pool,
            key_prefix=f"{self.runtime.config.queue_prefix}:admin-login",
        )
        return MovingWindowRateLimiter(storage)

    def attempt(self, address: str) -> bool:
        """Count one attempt from ``address``; False when it is over the limit."""
        return self._limiter.hit(self.item, address or "unknown")

    def retry_after(self, address: str) -> int:
        """Seconds until ``address`` may try again."""
        stats = self._limiter.get_window_stats(self.item, address or "unknown")
        return max(int(stats.reset_time - time.time()) + 1, 1)
