"""Post-incident review API routes (incidents/<key>/review/)."""
urlpatterns: list = []
