from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # incidents must not import notifications: it sends hooks after commit and we listen; status
        # changes and hypotheses are seen through the rows their owners write (post_save).
        from . import receivers

        receivers.connect()
