"""The review web UI and JSON API: FastAPI + Jinja2, server-rendered, a little JS of our own.

``create_app`` (``web.app``) builds it; ``UISettings``/``ui_settings`` (``web.security``) hold
its bind and login rules.
"""

from decomposer.web.app import create_app
from decomposer.web.security import UISettings, ui_settings

__all__ = ["UISettings", "create_app", "ui_settings"]
