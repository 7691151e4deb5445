"""ASGI entry point: HTTP goes to Django, WebSocket through Channels (session auth, origin check)."""
import os

from django.core.asgi import get_asgi_application

# Fail closed: a bare `daphne reliability_studio.asgi:application` gets production settings (needs
# SECRET_KEY and DATABASE_URL, DEBUG off). `make run` passes development on from manage.py.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "reliability_studio.settings.production")
django_asgi_app = get_asgi_application()  # must run before importing consumers (app registry)

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from incidents.routing import websocket_urlpatterns  # noqa: E402
from reliability_studio.websocket import AuthMiddlewareStack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
