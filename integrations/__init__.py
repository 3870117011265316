"""Adapters for serving frameworks, installed as ``mlf_middleware.integrations``.

Each adapter lives in its own subpackage and imports its framework; the core
package never imports them, so installing mlf-middleware pulls no framework.
"""

from __future__ import annotations

__all__: list[str] = []
