from rest_framework.routers import SimpleRouter

from .views import SLOViewSet

router = SimpleRouter()
router.register("slos", SLOViewSet, basename="slo")

urlpatterns = router.urls
