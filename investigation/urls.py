"""Control-room pages of the investigation (panels, review)."""
app_name = "investigation"
urlpatterns: list = []
