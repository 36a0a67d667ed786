"""Running as a service: metrics, systemd notify and watchdog, graceful shutdown."""
