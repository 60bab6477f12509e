"""moto's S3 server as a WSGI app, for gunicorn (``gunicorn moto_app:app``; see servers.py)."""

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

app = DomainDispatcherApplication(create_backend_app)
