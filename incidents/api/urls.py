from rest_framework.routers import DefaultRouter

from .views import IncidentViewSet, ServiceViewSet, TaskViewSet

router = DefaultRouter()
router.register("services", ServiceViewSet, basename="service")
router.register("incidents", IncidentViewSet, basename="incident")
router.register("tasks", TaskViewSet, basename="task")

urlpatterns = router.urls
