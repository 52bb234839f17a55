"""The console's web pages: Jinja2 templates, the message catalogue, vendored static files."""
