"""Investigation API routes (incidents/<key>/investigation/, changes/)."""
urlpatterns: list = []
