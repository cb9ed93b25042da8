"""The provision node's Django project: settings, URLs, authentication, protocol helpers."""
